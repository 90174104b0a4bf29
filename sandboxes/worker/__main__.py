"""``python -m worker``: run the zygote (the host passes CODEDANCE_CONTROL_FD)."""

from .zygote import main

main()
