"""What the add-on builds in a .blend: the wavelet node group (``group``, built with ``builder``; its
EEVEE data-texture ``loop``), its keyframes (``keyframes``, ``animation``), the fit stored beside it
(``stored``), the preview plane (``plane``), the OSL material (``osl``) and exact render set-ups (``scene``)."""
