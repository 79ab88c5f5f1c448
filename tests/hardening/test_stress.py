"""Eight Python threads calling every registered function at once.

Each entry of ``cases.CASES`` contributes a small call, a large float64
call and a large float32 call (the large ones big enough to run the GEMM
on several OpenMP threads) and its first invalid calls. The outcome of each
call (the bytes, dtype and shape of every result array, or the exception
type and message) is recorded on one thread first. Then eight threads run
all of them in different orders, as often as ``MLA_STRESS_SECONDS`` (2 s
in a plain ``pytest``) allows. Every outcome must be bitwise equal to the
recorded one, and the inputs must be unchanged at the end.
"""

import random
import struct
import sys
import threading
import time

import numpy as np
from cases import CASES, env_number, fixed_call, invalid_calls, large_call

STRESS_SECONDS = env_number("MLA_STRESS_SECONDS", 2.0)
THREADS = 8
INVALID_PER_FUNCTION = 3


def stress_calls():
    """Return ``[(label, function, args, kwargs)]`` for every function."""
    calls = []
    for case in CASES:
        variants = {
            "small": fixed_call(case, size=5, seed=1),
            "large float64": large_call(case, seed=2),
            "large float32": large_call(case, seed=3, dtype=np.float32),
        }
        for variant, (args, kwargs) in variants.items():
            calls.append((f"{case.name} {variant}", case.function, args, kwargs))
        for call in invalid_calls(case)[:INVALID_PER_FUNCTION]:
            calls.append((f"{case.name} {call.label}", case.function, call.args, call.kwargs))
    return calls


def encode(result):
    """Return a comparable form of a result that keeps every bit."""
    if isinstance(result, dict):
        return {key: encode(value) for key, value in result.items()}
    if isinstance(result, tuple):
        return tuple(encode(value) for value in result)
    if isinstance(result, float):
        return ("float", struct.pack("<d", result))
    array = np.asarray(result)
    return (array.dtype.str, array.shape, array.tobytes())


def outcome(function, args, kwargs):
    try:
        return encode(function(*args, **kwargs))
    except Exception as error:
        return ("raised", type(error).__name__, str(error))


def test_stress_threads_bitwise_equal(capsys):
    calls = stress_calls()
    copies = [
        [a.copy() if isinstance(a, np.ndarray) else None for a in args]
        for _, _, args, _ in calls
    ]
    expected = {label: outcome(f, args, kwargs) for label, f, args, kwargs in calls}

    barrier = threading.Barrier(THREADS)
    counts = [0] * THREADS
    mismatches = [[] for _ in range(THREADS)]
    deadline = []

    def worker(index):
        order = list(calls)
        random.Random(index).shuffle(order)
        if barrier.wait() == 0:
            deadline.append(time.monotonic() + STRESS_SECONDS)
        barrier.wait()
        while time.monotonic() < deadline[0]:
            for label, function, args, kwargs in order:
                if outcome(function, args, kwargs) != expected[label]:
                    mismatches[index].append(label)
                counts[index] += 1
                if time.monotonic() >= deadline[0]:
                    break

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with capsys.disabled():
        print(
            f"\nstress: {sum(counts)} calls on {THREADS} threads in "
            f"{STRESS_SECONDS:g} s, {len(calls)} distinct calls, "
            f"{sum(map(len, mismatches))} mismatches",
            file=sys.stderr,
        )
    assert all(count > 0 for count in counts)
    for index, labels in enumerate(mismatches):
        assert labels == [], f"thread {index} got different results for {sorted(set(labels))}"
    for (label, _, args, _), before in zip(calls, copies):
        for position, (old, new) in enumerate(zip(before, args)):
            if old is not None:
                assert old.tobytes() == new.tobytes(), f"{label}: argument {position} modified"
