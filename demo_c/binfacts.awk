# binfacts.awk -v t=tN FACTS: for each bin thread tN's frees went to (the demo's bin.tN.K facts),
# the first such free and its bin, as the tour's "(the demo says)" lines. Which bins a glibc uses
# differs (2.43 has no fastbins, and its tcache holds more), so the tour does not name them.
$0 ~ "^GDBEXT_FACT bin\\." t "\\." {
    split(substr($0, 13), kv, "=")
    if (!(kv[2] in first)) { first[kv[2]] = kv[1]; order[++n] = kv[2] }
}
$0 ~ "^GDBEXT_FACT free\\." t "\\." { split(substr($0, 13), kv, "="); freed[kv[1]] = kv[2] }
END {
    for (i = 1; i <= n; i++) {
        k = first[order[i]]
        sub(/^bin\./, "", k)
        printf "  free.%s=%s\n  bin.%s=%s\n", k, freed["free." k], k, order[i]
    }
}
