#!/bin/sh
# One number per line.
printf '1\n2.5\n-3e2\n'
