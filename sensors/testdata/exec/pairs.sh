#!/bin/sh
# Prints named values as a sensor script would, in both notations, and
# reports on the environment the adapter gave it.
echo "# read by pairs.sh"
echo "temperature 21.5"
echo "pressure=1013.25"
echo ""
echo "  humidity = 40  "
# HOME is not passed on; FOO comes from the entry's env.
if [ -z "${HOME+set}" ]; then echo "home_unset 1"; else echo "home_unset 0"; fi
echo "foo ${FOO:-0}"
