#!/bin/sh
# A single number, as vcgencmd-style wrappers print.
echo 42
