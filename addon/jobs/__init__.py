"""Work done in the engine's worker process: which Python runs it (``interpreter``), the process itself
(``process``), the inputs Blender writes for it (``inputs``) and one module per job kind (``fit``,
``sequence``, ``style``, ``expand``) that starts it, follows its messages and applies its result."""
