"""Neural style transfer: stylized images (``transfer``) and style-guided wavelet fits (``fit``).

``config`` holds the settings (torch-free), ``vgg`` the VGG19 feature network both use (and
texture expansion's style loss).
"""
