"""Identity engines measured on children and adults: ROC points, reference aggregation, look-alikes, cost.

    uv run python benchmarks/bench_identity.py ../shared/faces/children ../shared/faces/people \
        [--cache /tmp/enc.pkl] [--json]

Every photo is detected once (PhotoGuard's detector) and its main face encoded with SFace (the engine)
and dlib's descriptor (the engine before it). Then, per folder:

* ROC: same-person pairs (photos at most ``--window`` years apart where ages are in the file names)
  against pairs of different people; the share of same-person pairs kept when 0.01 %, 0.1 % and 1 %
  of different-people pairs would pass. For SFace, dlib, "both must agree" (the best pair of
  thresholds on this data for that false rate: an optimistic bound for the combination), and the
  weighted sum of the two cosine similarities (the best weight on this data, also optimistic).
* Several references: a face against a child enrolled from 2-3 photos of the same years, scored as
  the nearest reference or their mean; keep at the same false rates.
* Look-alikes: how many pairs of children the look-alike rule catches in a roster of everyone.
* Encoding cost per face (alignment + network), batched and one at a time.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photoguard.engine.detect import FaceDetector  # noqa: E402
from photoguard.engine.embed import FaceEncoder  # noqa: E402
from photoguard.engine.facenet import DlibEncoder  # noqa: E402
from photoguard.engine.identify import Template, look_alike_pairs  # noqa: E402
from photoguard.evaluate.faces import load_rgb, person_photos  # noqa: E402
from photoguard.evaluate.rosters import photo_age  # noqa: E402

FALSE_RATES = (1e-4, 1e-3, 1e-2)
SUM_WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # SFace's share in the weighted sum


def encode(folder: Path, detector, sface, dlib) -> list[dict]:
    out = []
    for person, photos in person_photos(folder).items():
        for path in photos:
            rgb = load_rgb(path)
            faces = detector.detect(rgb)
            if not faces:
                continue
            main = max(faces, key=lambda f: f.width * f.height)
            s = sface.encode(rgb, [main])[0]
            d = dlib.encode(rgb, [main])[0]
            out.append({"person": person, "path": str(path), "age": photo_age(path), "width": main.width,
                        "sface": s, "dlib": d})
    return out


def pairs(items: list[dict], window: int):
    """Indices (i, j, same) of pairs of usable faces; same-person pairs only within ``window`` years."""
    same, diff = [], []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = items[i], items[j]
            if a["person"] == b["person"]:
                if a["age"] is None or b["age"] is None or abs(a["age"] - b["age"]) <= window:
                    same.append((i, j))
            else:
                diff.append((i, j))
    return same, diff


def keep_at(genuine: np.ndarray, impostor: np.ndarray, rate: float) -> tuple[float, float]:
    """(threshold, share of genuine scores >= threshold) where at most ``rate`` of impostors pass."""
    imp = np.sort(impostor)[::-1]
    allowed = int(np.floor(rate * len(imp)))
    thr = imp[allowed] + 1e-9 if allowed < len(imp) else -np.inf   # strictly above the (allowed+1)-th
    return float(thr), float((genuine >= thr).mean())


def both_agree(gs, gd, is_, id_, rate: float) -> float:
    """Best keep when a pair passes only if both scores pass their thresholds, at most ``rate`` false."""
    best = 0.0
    allowed = int(np.floor(rate * len(is_)))
    for ts in np.quantile(is_, np.linspace(0.90, 1.0, 60)):
        pass_s = is_ >= ts
        if pass_s.sum() <= allowed:
            td = -np.inf
        else:
            vals = np.sort(id_[pass_s])[::-1]
            td = vals[allowed] + 1e-9
        best = max(best, float(((gs >= ts) & (gd >= td)).mean()))
    return best


def roc(items: list[dict], window: int) -> dict:
    ok = [k for k, it in enumerate(items) if it["sface"] is not None and it["dlib"] is not None and it["width"] >= 80]
    items = [items[k] for k in ok]
    S = np.stack([it["sface"] for it in items])
    D = np.stack([it["dlib"] for it in items])
    same, diff = pairs(items, window)
    si, sj = np.array(same).T
    di, dj = np.array(diff).T
    gs, is_ = (S[si] * S[sj]).sum(1), (S[di] * S[dj]).sum(1)
    gd, id_ = -np.linalg.norm(D[si] - D[sj], axis=1), -np.linalg.norm(D[di] - D[dj], axis=1)
    U = D / np.linalg.norm(D, axis=1, keepdims=True)
    gu, iu = (U[si] * U[sj]).sum(1), (U[di] * U[dj]).sum(1)
    out = {"faces": len(items), "same_pairs": len(same), "different_pairs": len(diff), "points": {}}
    for rate in FALSE_RATES:
        ts, ks = keep_at(gs, is_, rate)
        td, kd = keep_at(gd, id_, rate)
        summed = max((keep_at(w * gs + (1 - w) * gu, w * is_ + (1 - w) * iu, rate)[1], w) for w in SUM_WEIGHTS)
        out["points"][f"{rate:.2%}"] = {"sface": ks, "sface_threshold": ts, "dlib": kd, "dlib_distance": -td,
                                         "both": both_agree(gs, gd, is_, id_, rate),
                                         "sum": summed[0], "sum_sface_weight": summed[1]}
    out["sface_same_median"] = float(np.median(gs))
    out["sface_different_p99"] = float(np.quantile(is_, 0.99))
    return out


def references(items: list[dict], window: int, seed: int = 0, runs: int = 5) -> dict:
    """A test face against each child's 2-3 references (same years): nearest vs mean."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[dict]] = {}
    for it in items:
        if it["sface"] is not None and it["width"] >= 80:
            by.setdefault(it["person"], []).append(it)
    gen = {"nearest": [], "mean": []}
    imp = {"nearest": [], "mean": []}
    own_levels, cross = [], []
    for _ in range(runs):
        refs, tests = {}, []
        for person, its in by.items():
            ages = [it["age"] if it["age"] is not None else 0 for it in its]
            starts = [a for a in sorted(set(ages)) if sum(a <= b <= a + window for b in ages) >= 3]
            if not starts:
                continue
            a0 = starts[rng.integers(len(starts))]
            inside = [it for it, a in zip(its, ages) if a0 <= a <= a0 + window]
            k = 3 if len(inside) >= 4 else 2
            pick = set(rng.choice(len(inside), k, replace=False).tolist())
            refs[person] = np.stack([it["sface"] for i, it in enumerate(inside) if i in pick])
            tests += [(person, it["sface"]) for i, it in enumerate(inside) if i not in pick]
        for person, enc in tests:
            for child, r in refs.items():
                sims = r @ enc
                for name, val in (("nearest", sims.max()), ("mean", sims.mean())):
                    (gen if child == person else imp)[name].append(val)
        templates = [Template(c, e) for c, r in refs.items() for e in r]
        for c, r in refs.items():
            if len(r) > 1:
                s = r @ r.T
                own_levels.append(float(np.median(s[np.triu_indices(len(r), 1)])))
        names = list(refs)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                cross.append(float((refs[names[i]] @ refs[names[j]].T).max()))
        flagged = look_alike_pairs(templates, threshold=0.6)
    out = {"children": len(by), "points": {}}
    for rate in FALSE_RATES:
        out["points"][f"{rate:.2%}"] = {name: keep_at(np.array(gen[name]), np.array(imp[name]), rate)[1]
                                        for name in gen}
    out["own_reference_similarity"] = {"median": float(np.median(own_levels)), "p10": float(np.quantile(own_levels, 0.1)),
                                       "min": float(np.min(own_levels))}
    out["cross_child_closest"] = {"max": float(np.max(cross)), "p99": float(np.quantile(cross, 0.99)),
                                  "median": float(np.median(cross))}
    out["look_alike_pairs_last_roster"] = [sorted(p) for p in flagged]
    out["pairs_in_last_roster"] = len(names) * (len(names) - 1) // 2
    return out


def cost(folder: Path, detector, sface: FaceEncoder, dlib: DlibEncoder, n: int = 24) -> dict:
    photos = [p for ps in person_photos(folder).values() for p in ps][:n]
    rgbs, faces = [], []
    for p in photos:
        rgb = load_rgb(p)
        fs = detector.detect(rgb)
        if fs:
            rgbs.append(rgb)
            faces.append([max(fs, key=lambda f: f.width)])
    out = {}
    for name, enc in (("sface", sface), ("dlib", dlib)):
        enc.encode(rgbs[0], faces[0])  # warm up
        t = time.perf_counter()
        for rgb, f in zip(rgbs, faces):
            enc.encode(rgb, f)
        one = (time.perf_counter() - t) / len(rgbs)
        # Batched: the same face 8 times in one call, as a photo with 8 faces.
        t = time.perf_counter()
        for rgb, f in zip(rgbs, faces):
            enc.encode(rgb, f * 8)
        batch = (time.perf_counter() - t) / (8 * len(rgbs))
        out[name] = {"ms_per_face_alone": 1000 * one, "ms_per_face_in_8": 1000 * batch}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=None, help="Keep the encodings here between runs.")
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    detector = FaceDetector()
    sface, dlib = FaceEncoder(), DlibEncoder()
    cache = pickle.loads(args.cache.read_bytes()) if args.cache and args.cache.exists() else {}
    results = {}
    for folder in args.folders:
        key = str(folder.resolve())
        if key not in cache:
            cache[key] = encode(folder, detector, sface, dlib)
            if args.cache:
                args.cache.write_bytes(pickle.dumps(cache))
        items = cache[key]
        results[folder.name] = {"roc": roc(items, args.window), "references": references(items, args.window)}
    results["cost"] = cost(args.folders[0], detector, sface, dlib)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        if name == "cost":
            continue
        roc_ = r["roc"]
        print(f"== {name}: {roc_['faces']} faces >= 80 px, {roc_['same_pairs']} same-person pairs "
              f"(<= {args.window} years apart), {roc_['different_pairs']} different-people pairs")
        print(f"{'false pairs':>12} {'SFace':>7} {'(cos >=)':>9} {'dlib':>7} {'(dist <=)':>10} {'both agree':>11} "
              f"{'sum':>7} {'(SFace share)':>13}")
        for rate, p in roc_["points"].items():
            print(f"{rate:>12} {p['sface']:>7.1%} {p['sface_threshold']:>9.3f} {p['dlib']:>7.1%} "
                  f"{p['dlib_distance']:>10.3f} {p['both']:>11.1%} {p['sum']:>7.1%} {p['sum_sface_weight']:>13.1f}")
        ref = r["references"]
        print(f"  several references ({ref['children']} people, SFace): keep at false rate  nearest / mean")
        for rate, p in ref["points"].items():
            print(f"    {rate:>8}: {p['nearest']:.1%} / {p['mean']:.1%}")
        print(f"  own references alike (median over people): {ref['own_reference_similarity']}")
        print(f"  closest references of different people: {ref['cross_child_closest']}")
        print(f"  look-alike pairs in a roster of everyone: {len(ref['look_alike_pairs_last_roster'])} of "
              f"{ref['pairs_in_last_roster']} {ref['look_alike_pairs_last_roster']}")
    print("encoding cost per face:", json.dumps(results["cost"]))


if __name__ == "__main__":
    main()
