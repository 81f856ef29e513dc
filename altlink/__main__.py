import sys

from altlink.cli import main

sys.exit(main())
