import sys

from tokenpulse.cli.main import main

sys.exit(main())
