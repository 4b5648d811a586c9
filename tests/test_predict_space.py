"""art_explorer/predict/space.py: a configuration's continuous values as a point in [0, 1]^d."""

from __future__ import annotations

import numpy as np
from predict_fixtures import sample

from art_explorer.predict.space import SearchSpace
from art_explorer.scene import schema


def test_search_space_round_trip_keeps_the_discrete_choices() -> None:
    p = sample(11)
    sp = SearchSpace.of(p)
    q = sp.decode(sp.encode(p))
    assert schema.canonical_json(q) == schema.canonical_json(p) or all(
        q[k] == p[k] for k in (*schema.CAT_KEYS, *schema.BOOL_KEYS, "color")
    )
    assert len(q["layers"]) == len(p["layers"])
    # a different point changes only searched values
    x = np.random.default_rng(0).random(sp.dim)
    r = sp.decode(x)
    assert all(r[k] == p[k] for k in (*schema.CAT_KEYS, *schema.BOOL_KEYS, "color"))
    assert [sorted(la) for la in r["layers"]] == [sorted(la) for la in p["layers"]]
    assert SearchSpace.of(p, dims="all").dim > sp.dim
