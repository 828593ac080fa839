"""semclust.naming: hierarchy propagation, the discriminative choice, CSLS, scores."""

from __future__ import annotations

import numpy as np
import pytest

from semclust.naming import ClusterNaming, center_nouns, name_by_csls, name_clusters, name_from_class_evidence
from semclust.naming.csls import csls_matrix, mean_top_k_similarity
from semclust.naming.hierarchy import SynsetTree, choose_names, margins, propagate

# A hand-built tree: entity > {animal > {dog > {terrier, beagle}, cat}, clothing > {coat, shirt}}
PARENTS = {
    "terrier": ["dog"],
    "beagle": ["dog"],
    "dog": ["animal"],
    "cat": ["animal"],
    "animal": ["entity"],
    "coat": ["clothing"],
    "shirt": ["clothing"],
    "clothing": ["entity"],
    # a second path up (WordNet is a DAG): a terrier is also a "pet"; its mass must count once at entity
    "pet": ["entity"],
}
PARENTS["terrier"] = ["dog", "pet"]
CLASSES = ["terrier", "beagle", "cat", "coat", "shirt"]


def tree() -> SynsetTree:
    return SynsetTree.from_parents(CLASSES, PARENTS)


def column(t: SynsetTree, node: str) -> int:
    return t.nodes.index(node)


def test_propagation_sums_each_class_once_per_ancestor() -> None:
    t = tree()
    mass = np.array([[0.5, 0.3, 0.1, 0.1, 0.0], [0.0, 0.0, 0.0, 0.6, 0.4]])
    cov = propagate(mass, t)
    expected = {
        "terrier": [0.5, 0.0],
        "dog": [0.8, 0.0],
        "animal": [0.9, 0.0],
        "pet": [0.5, 0.0],
        "clothing": [0.1, 1.0],
        "entity": [1.0, 1.0],  # the terrier's two paths still count it once
    }
    for node, values in expected.items():
        np.testing.assert_allclose(cov[:, column(t, node)], values, atol=1e-12)
    assert t.n_below[column(t, "dog")] == 2 and t.n_below[column(t, "entity")] == 5


def test_margins_against_the_rest_and_the_strongest_rival() -> None:
    cov = np.array([[0.9, 0.2], [0.5, 0.7], [0.1, 0.6]])
    # loop references
    others = [[[cov[j, s] for j in range(3) if j != k] for s in range(2)] for k in range(3)]
    rival = np.array([[cov[k, s] - max(others[k][s]) for s in range(2)] for k in range(3)])
    rest = np.array([[cov[k, s] - sum(others[k][s]) / 2 for s in range(2)] for k in range(3)])
    np.testing.assert_allclose(margins(cov, "rival"), rival)
    np.testing.assert_allclose(margins(cov), rest)
    np.testing.assert_allclose(margins(cov[:1]), cov[:1])  # one cluster: no rival
    with pytest.raises(ValueError, match="against"):
        margins(cov, "all")


def test_discriminative_choice_prefers_specific_synsets_that_cover_the_cluster() -> None:
    t = tree()
    # cluster 0: terriers and beagles; cluster 1: coats; cluster 2: shirts
    mass = np.array(
        [
            [0.45, 0.45, 0.05, 0.05, 0.0],
            [0.0, 0.0, 0.05, 0.85, 0.10],
            [0.0, 0.0, 0.05, 0.15, 0.80],
        ]
    )
    chosen = choose_names(propagate(mass, t), t, top=3, rho=0.75)
    names = [[t.nodes[c.node] for c in row] for row in chosen]
    # dog (margin 0.9) beats animal (0.9, but covers more classes) and terrier (0.45, too little)
    assert names[0][0] == "dog"
    # clothing is shared by clusters 1 and 2 (margin 0): the specific garment names them
    assert names[1][0] == "coat" and names[2][0] == "shirt"
    assert chosen[1][0].margin == pytest.approx(0.85 - (0.05 + 0.15) / 2)
    assert chosen[1][0].relative == pytest.approx(chosen[1][0].margin / 0.85)
    assert chosen[0][0].coverage == pytest.approx(0.9)
    # entity is everybody's: never first
    assert all(row[0] != "entity" for row in names)
    # a looser rho lets the terriers (margin 0.45, half of dog's 0.9) name cluster 0; a stricter one not
    loose = choose_names(propagate(mass, t), t, rho=0.49)
    assert t.nodes[loose[0][0].node] == "terrier"
    assert t.nodes[choose_names(propagate(mass, t), t, rho=0.51)[0][0].node] == "dog"
    with pytest.raises(ValueError, match="rho"):
        choose_names(propagate(mass, t), t, rho=0.0)


def test_allowed_mask_restricts_names() -> None:
    t = tree()
    mass = np.array([[0.45, 0.45, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 0.5]])
    allowed = np.array([n not in ("dog", "terrier", "beagle") for n in t.nodes])
    chosen = choose_names(propagate(mass, t), t, allowed=allowed)
    assert t.nodes[chosen[0][0].node] == "animal"
    assert all(allowed[c.node] for row in chosen for c in row)


def test_score_drops_when_the_evidence_is_spread() -> None:
    t = tree()
    names = list(t.nodes)
    n = 40
    labels = np.repeat([0, 1], n)
    rng = np.random.default_rng(0)
    sharp = np.zeros((2 * n, 5))
    sharp[:n, 0] = 0.9
    sharp[:n, 2] = 0.1
    sharp[n:, 3] = 0.9
    sharp[n:, 4] = 0.1
    uniform = np.full((2 * n, 5), 0.2)
    spread = 0.05 * sharp + 0.95 * uniform + rng.uniform(0, 0.01, size=(2 * n, 5))
    spread /= spread.sum(axis=1, keepdims=True)
    confident = name_from_class_evidence(sharp, labels, 2, t, names)
    vague = name_from_class_evidence(spread, labels, 2, t, names)
    for k in range(2):
        assert vague.names[k][0].score < confident.names[k][0].score
    assert not confident.weak(0)
    assert vague.weak(0) and vague.weak(1)
    assert "weak" in vague.label(0) and "weak" not in confident.label(0)


def test_empty_cluster_gets_no_names_and_is_weak() -> None:
    t = tree()
    probs = np.tile([0.2, 0.2, 0.2, 0.2, 0.2], (4, 1))
    naming = name_from_class_evidence(probs, np.array([0, 0, 2, 2]), 3, t, list(t.nodes))
    assert naming.names[1] == [] and naming.weak(1)
    assert naming.summary(1)["weak"] is True


def loop_csls(q, t, x, k):
    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def r(v, others):
        sims = sorted((cos(v, o) for o in others), reverse=True)[:k]
        return sum(sims) / len(sims)

    return np.array([[2 * cos(a, b) - r(a, t) - r(b, x) for b in t] for a in q])


def test_csls_matches_a_loop_on_a_tiny_matrix() -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(3, 4))
    t = rng.normal(size=(6, 4)) * rng.uniform(0.5, 2, size=(6, 1))
    x = rng.normal(size=(8, 4))
    for k in (1, 3, 20):
        np.testing.assert_allclose(csls_matrix(q, t, x, k=k), loop_csls(q, t, x, k), atol=1e-5)
    np.testing.assert_allclose(
        mean_top_k_similarity(t, x, 2),
        [np.mean(sorted((x @ v) / (np.linalg.norm(x, axis=1) * np.linalg.norm(v)))[-2:]) for v in t],
        atol=1e-5,
    )


def test_csls_naming_skips_a_hub_noun() -> None:
    # two clusters along e1 and e2; "hub" lies between everything, "cat"/"car" are specific
    x = np.array([[1, 0.05, 0], [1, -0.05, 0], [0.05, 1, 0], [-0.05, 1, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    nouns = np.array([[0.75, 0.7, 0.1], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
    names = ["hub", "cat", "car"]
    # plain cosine would put the hub first for both clusters
    centroid0 = x[:2].mean(axis=0)
    cos0 = (nouns @ centroid0) / np.linalg.norm(nouns, axis=1) / np.linalg.norm(centroid0)
    assert names[int(np.argmax(cos0))] == "hub"
    naming = name_by_csls(x, labels, 2, nouns, names, k=2)
    assert naming.names[0][0].name == "cat" and naming.names[1][0].name == "car"
    assert naming.names[0][0].score > 0


def test_center_nouns_flag_hubs() -> None:
    nouns = np.array([[1, 0], [0, 1], [0.7, 0.7]], dtype=np.float32)
    hubness = np.array([0.1, 0.2, 0.9])  # the third noun is the vocabulary's most central
    rows = center_nouns(np.array([[0.6, 0.8]]), nouns, ["cat", "car", "thing"], hubness, top=2)
    assert [n.name for n in rows[0]] == ["thing", "car"]
    assert [n.hub for n in rows[0]] == [True, False]


def test_name_clusters_routes() -> None:
    x = np.eye(3, dtype=np.float32)[[0, 0, 1, 1]]
    nouns = (["a", "b", "c"], np.eye(3, dtype=np.float32))
    naming = name_clusters(np.array([0, 0, 1, 1]), 2, joint=x, nouns=lambda: nouns, vocabulary_ids=["", "", ""])
    assert isinstance(naming, ClusterNaming) and naming.source == "csls"
    assert naming.as_lists()[0][0] == "a" and naming.as_lists()[1][0] == "b"
    with pytest.raises(ValueError, match="naming needs"):
        name_clusters(np.array([0, 1]), 2)
