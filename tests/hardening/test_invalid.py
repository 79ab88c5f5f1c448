"""Every invalid call of the registry raises its exception, naming the function.

The calls come from ``cases.invalid_calls``: those derived from each
signature (wrong dtypes, None, ragged lists, wrong dimensions, shapes that do
not fit, missing, extra, unknown and repeated arguments) and each entry's
own. The leak test repeats the same calls thousands of times.
"""

import pytest
from cases import CASES, invalid_calls

INVALID_CALLS = [
    pytest.param(case, call, id=f"{case.name}-{call.label}")
    for case in CASES
    for call in invalid_calls(case)
]


@pytest.mark.parametrize("case, call", INVALID_CALLS)
def test_invalid_call_raises(case, call):
    with pytest.raises(call.error) as raised:
        case.function(*call.args, **call.kwargs)

    assert str(raised.value).startswith(case.name), str(raised.value)
