"""A model of glibc malloc (ptmalloc2) over a Memory: arenas, heaps, chunks, bins.

Plain Python over bytes; gdb is never imported here.  The edge provides a Memory, addresses
(main_arena, mp_, each thread's tcache) and candidate mappings; the model reads and judges.

    layout = Layout.for_version((2, 36))            # or Layout.from_types(struct_info, version)
    inputs = HeapInputs(mem, layout, main_arena, mp=mp_address,
                        tcaches={1: tcache_of_thread_1}, mmap_candidates=anon_rw_mappings)
    state = analyze(inputs)                          # or analyze(inputs, ModelOptions(...))
    state.arenas        # [ArenaState]: address, main, flags, contiguous, top, top_size,
                        #   last_remainder, next, next_free, attached_threads, system_mem,
                        #   max_system_mem, heaps, fastbins, unsorted, smallbins, largebins,
                        #   totals() -> {state: {"count", "bytes"}}, chunk_count
    state.arenas[0].heaps[0]   # HeapSegment: start, end, first_chunk, heap_info, complete,
                               #   chunks(), chunk(i), index_at(addr); arrays addrs/raws/states
    state.tcache        # {thread label: Tcache}: address, bins [BinList], counts, inactive
    state.mmapped       # [MmappedChunk]: address, size, user_address(layout), mapping_start/size
    state.mp            # malloc_par fields by name, or None
    state.problems      # [Problem(address, kind, message)]: every inconsistency found
    state.chunk_at(addr), state.neighbours(chunk)      # for `chunk ADDRESS`
    state.mallinfo2(), state.malloc_info().to_xml()    # what glibc would report, exactly

Each chunk has one state (chunks.STATES): used, tcache, fastbin, unsorted, smallbin, largebin,
top, mmapped, corrupt, fencepost (the markers that end a heap an arena outgrew, or a piece of a
non-contiguous main heap).  Free states come from bin membership, not from PREV_INUSE;
Chunk.bin names the list: "tcache[thread <n>][<i>]" (a thread number label; other labels
verbatim), "fastbin[i]", "unsorted", "smallbin[i]", "largebin[i]".  analyze() raises only
PtmallocError (main_arena unreadable); everything else that is wrong is a Problem at the
address holding the bad value, and the walk goes on past it.
Without symbols, locate.find_main_arena / find_mp / find_tcache / find_tcache_chunks find the
structures by their shape and say how (Found(address, how)).
"""

import importlib

# Each public name and the submodule that defines it; loaded on first use (PEP 562), so that
# gdb start-up, which only registers commands, does not pay for the whole model.
_WHERE = {
    "analysis": ("HeapInputs", "ModelOptions", "analyze"),
    "arena": ("ArenaHeader", "HeapInfo", "read_arena", "read_heap_info", "read_mp"),
    "bins": ("BinList", "Tcache"),
    "chunks": (
        "FREE_STATES",
        "IS_MMAPPED",
        "NON_MAIN_ARENA",
        "PREV_INUSE",
        "STATES",
        "Chunk",
        "Problem",
        "ProblemKind",
        "PtmallocError",
        "bin_chunk_size",
        "bin_index",
        "fastbin_index",
        "largebin_index",
        "largebin_max_size",
        "protect_ptr",
        "reveal_ptr",
        "smallbin_index",
        "tcache_index",
    ),
    "chunkinfo": ("HeapHeaderPart", "free_links", "heap_header_part"),
    "heap": ("HeapSegment",),
    "layout": ("Layout", "Struct"),
    "locate": (
        "Found",
        "find_corrupt_main_arena",
        "find_main_arena",
        "find_mp",
        "find_tcache",
        "find_tcache_chunks",
        "libc_data_mappings",
    ),
    "mmapped": ("MmapScope", "MmappedChunk", "chunks_in_mapping"),
    "state": ("ArenaState", "HeapState"),
    "summary": ("MallocInfo", "Mallinfo2"),
    "where": ("Where", "WhereInputs", "where"),
}
_MODULE_OF = {name: mod for mod, names in _WHERE.items() for name in names}


def __getattr__(name):
    mod = _MODULE_OF.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_MODULE_OF))


__all__ = sorted(_MODULE_OF)  # every name _WHERE lists, kept in one place
