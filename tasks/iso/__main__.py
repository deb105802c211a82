import sys

from tasks.iso.cli import main

sys.exit(main())
