"""`python -m engine` == the `hdrcnf` command."""
import sys

from .cli import main

sys.exit(main())
