"""`python -m tsegossip.provider` serves the plugin (Terraform starts it through the mirror's launcher)."""

from .provider import main

main()
