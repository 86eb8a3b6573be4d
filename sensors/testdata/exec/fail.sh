#!/bin/sh
# Prints a value, complains and fails: the value must not be used.
echo "partial 1"
echo "i2c bus error" >&2
exit 3
