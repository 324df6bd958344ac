"""Re-score the kept step's saved answers of finished runs with the current scorer (pure text), so runs made with
different scorer versions compare; kept step (select_by=loss) does not depend on the scorer."""
import json, sys
from pathlib import Path
from medqa.analysis.replicates import mean_ci, welch_difference
from medqa.quality.heldout import heldout_questions, score_heldout
from medqa.quality.metrics import score_answer
from medqa.quality.probe_specs import load_probe_set
from medqa.settings.quality import QualitySettings

qs = {q.id: q for q in heldout_questions()}
probes = {p.id: p for p in load_probe_set("seed5")}
groups = {}
for d in map(Path, sys.argv[1:]):
    s = json.loads((d / "run.json").read_text())
    kept = s["selected"]["step"]
    held = [json.loads(l) for l in (d / "heldout.jsonl").read_text().splitlines() if l.strip()]
    held = [r for r in held if r["step"] == kept]
    rows = score_heldout([qs[r["id"]] for r in held], {r["id"]: (r["answer"], r["stopped_eos"]) for r in held}, QualitySettings())
    hq = sum(r["quality"] for r in rows) / len(rows)
    pr = [json.loads(l) for l in (d / "probes.jsonl").read_text().splitlines() if l.strip()]
    pr = [r for r in pr if r["step"] == kept]
    pq = sum(score_answer(r["answer"], stopped_eos=r["stopped_eos"], n_tokens=r["n_tokens"], probe=probes[r["probe_id"]], settings=QualitySettings())["quality"] for r in pr) / len(pr)
    losses = [e["eval_loss"] for e in s["evals"]]
    g = s["settings"]["tracking"]["group"]
    groups.setdefault(g, []).append({"run": str(d), "seed": s["settings"]["train"]["seed"], "best_loss": min(losses), "kept": kept, "heldout": hq, "probe": pq})
out = {}
for g, runs in groups.items():
    out[g] = {k: mean_ci([r[k] for r in runs]) for k in ("best_loss", "heldout", "probe")}
    print(f"{g}: n={len(runs)} seeds={[r['seed'] for r in runs]}")
    for r in runs:
        print(f"   seed {r['seed']}: best eval loss {r['best_loss']:.4f}, kept step {r['kept']}, held-out {r['heldout']:.3f}, probes {r['probe']:.3f}")
    for k, ci in out[g].items():
        print(f"   {k}: {ci[0]:.4f} [{ci[1]:.4f}, {ci[2]:.4f}]")
names = list(groups)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        for k in ("best_loss", "heldout", "probe"):
            d = welch_difference([r[k] for r in groups[a]], [r[k] for r in groups[b]])
            if d:
                print(f"{b} - {a} {k}: {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] {'exceeds seed noise' if d[1] > 0 or d[2] < 0 else 'within seed noise'}")
