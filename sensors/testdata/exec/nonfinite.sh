#!/bin/sh
# Values a broken sensor might report.
echo "a NaN"
echo "b 1.5"
echo "c +Inf"
