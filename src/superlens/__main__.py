import sys

from superlens.cli import main

sys.exit(main())
