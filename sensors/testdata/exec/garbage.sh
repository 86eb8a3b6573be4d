#!/bin/sh
# The second line does not parse.
echo "temp 21.5"
echo "temp2 twenty"
