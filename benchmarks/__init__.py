"""``make bench``: the figures the issues ask for, measured in one run on this machine."""
