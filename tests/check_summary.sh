#!/bin/bash
# check_summary.sh C_LOG PYTHON_LOG STATUS: the one line `make check` ends with. It counts the
# Check suites and checks in C_LOG (each suite prints "NN%: Checks: N, Failures: F, Errors: E")
# and pytest's result in PYTHON_LOG ("N passed, M failed, K skipped in ..."), and says PASS only
# when STATUS is 0, every suite reported with no failure or error, and pytest reported with
# passes and no failure or error. Exits 0 on PASS, 1 on FAIL.
c_log=$1 py_log=$2 status=$3
suites=0 checks=0 cfail=0
while read -r n f e; do
  suites=$((suites + 1)) checks=$((checks + n)) cfail=$((cfail + f + e))
done < <(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$c_log" 2>/dev/null)
ran=$(grep -c '^== ' "$c_log" 2>/dev/null)
last=$(grep -E '^=*( |)[0-9]+ (passed|failed|error)' "$py_log" 2>/dev/null | tail -n 1)
count() { sed -n "s/.*\b\([0-9][0-9]*\) $1.*/\1/p" <<<"$last" | head -n 1; }
passed=$(count passed) failed=$(count failed) skipped=$(count skipped) errors=$(count error)
passed=${passed:-0} failed=${failed:-0} skipped=${skipped:-0} errors=${errors:-0}
verdict=PASS
if [ "$status" != 0 ] || [ "$suites" -eq 0 ] || [ "$suites" -ne "${ran:-0}" ] || [ "$cfail" -ne 0 ] ||
   [ -z "$last" ] || [ "$passed" -eq 0 ] || [ "$failed" -ne 0 ] || [ "$errors" -ne 0 ]; then
  verdict=FAIL
fi
echo "revl: make check $verdict: C $suites/${ran:-0} suites, $checks checks, $cfail failed;" \
     "pytest $passed passed, $failed failed, $errors errors, $skipped skipped"
[ $verdict = PASS ]
