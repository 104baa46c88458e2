"""`python -m devtrip_scale` runs the devscale command line."""

from devtrip_scale.cli import main

main()
