# binfacts.awk -v t=tN FACTS: for each bin thread tN's frees went to (the demo's bin.tN.K facts),
# its largest such free, the last of them (the one a heap picture shows best) and its bin, as the tour's
# "(the demo says)" lines. Which bins a glibc uses differs (2.43 has no fastbins, and its tcache
# holds more), so the tour does not name them.
$0 ~ "^GDBEXT_FACT free\\." t "\\." {
    split(substr($0, 13), kv, "=")
    k = kv[1]; sub(/^free\./, "", k)
    freed[k] = kv[2]
}
$0 ~ "^GDBEXT_FACT bin\\." t "\\." {
    split(substr($0, 13), kv, "=")
    k = kv[1]; sub(/^bin\./, "", k)
    split(freed[k], ar, ":")
    if (!(kv[2] in best)) order[++n] = kv[2]
    if (!(kv[2] in best) || ar[2] + 0 >= size[kv[2]]) { best[kv[2]] = k; size[kv[2]] = ar[2] + 0 }
}
END {
    for (i = 1; i <= n; i++) {
        k = best[order[i]]
        printf "  free.%s=%s\n  bin.%s=%s\n", k, freed[k], k, order[i]
    }
}
