"""Adversarial texture expansion: learn one texture, then expand it to twice its size (and again).

After Zhou et al., "Non-Stationary Texture Synthesis by Adversarial Expansion" (SIGGRAPH 2018):

* a fully convolutional generator ``ExpansionGenerator`` maps a k x k block to a 2k x 2k block
  (7x7 conv, two stride-2 downsamplings, residual blocks, three 2x upsamplings, 7x7 conv, tanh);
* a PatchGAN discriminator ``PatchDiscriminator`` judges 2k x 2k blocks patch by patch;
* training on ONE image: a random 2k x 2k crop T of the image, a k x k crop S of T (anywhere in T, as
  in the paper, or its centre), ``G(S)`` should be T.  Losses, as in the paper and its official code:
  adversarial x1 (the non-saturating "vanilla" GAN loss, BCE on logits) + VGG19 style x1 + L1 x100
  (L1 on [-1, 1] images).  Adam, lr 2e-4, beta1 0.5; the rate decays linearly to 0 over the second
  half of training (the official code's 50k + 50k schedule);
* once trained the generator expands the WHOLE image: ``expand(G, image)`` is exactly 2x the input for
  any size (the input is reflect-padded to a multiple of 4 and the 2x output cropped); applying it to
  its own output gives 4x, 8x (``expand(G, image, scale=8)``).

The style term (``style_loss``): for each VGG19 layer l of ``style_layers`` (relu1_1 ... relu5_1 in the
``gpu`` preset; ``cpu-quick`` leaves out relu5_1, a 4 x 4 map on its 64 px crops that costs a third of a
step), the squared Frobenius distance of the Gram matrices (``vgg.gram``: normalised by C*H*W, caffe input
convention) relative to the target's, ``|G_l(x) - G_l(T)|^2 / |G_l(T)|^2``, summed over the layers.
Relative per layer, so "x1" does not depend on the VGG input scale and every layer counts alike.

``expand(..., match=True)`` matches the colour histogram of every 2x step to the input's
(``match_histogram``), a standard last step of texture synthesis: repeated expansions then keep the
source's brightness and contrast.  Off by default (the paper's output).

Deviations from the paper, each for a reason: upsampling is nearest-neighbour 2x + 3x3 conv instead
of transposed convolutions (no checkerboard: it would show as peaks in the power spectrum); instance
normalisation without running statistics (batch size 1; the same behaviour on a crop and on the whole
image); no dropout (training is exactly reproducible, so resuming equals continuous training).

Checkpoints are plain state dicts (tensors, numbers, strings) written atomically with ``torch.save``
and read with ``torch.load(weights_only=True)``: nothing is unpickled.  They hold both networks, both
optimisers, the crop sampler's random state, the iteration, the configuration and a fingerprint of
the training image, so a stopped training resumes exactly and a finished one is reused.

Wavelet side: ``extend_canvas`` maps a fit to a larger frame (it renders beyond its old frame);
fitting wavelets to an expanded texture is ``fit.fit`` on the expansion (``cli expand --wavelets``).
"""
