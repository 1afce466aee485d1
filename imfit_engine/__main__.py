import sys

try:  # the CLI imports torch (seconds): Ctrl-C in that time is one line too, not a traceback
    from .cli import main

    code = main()
except KeyboardInterrupt:
    print("imfit: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
