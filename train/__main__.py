import sys

from realtime.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
