#!/usr/bin/env python3
"""Crash-consistency harness: SIGKILLs corpus commands at random moments and checks the store and
the files they write after every kill (docs/RELIABILITY.md, "Crash consistency").

    scripts/crash-harness.py --binary .build/release/corpus --kills 50
    scripts/crash-harness.py --binary B --commands train --kills 5 --seed 7      # a short run
    scripts/crash-harness.py --binary B --commands export --seed 7 --only 12     # replay kill 12

For every command it prepares a store once (a synthetic CSV of --rows question-answer rows,
ingested, checked, snapshotted; the bundled examples and a finished 4-step training run of the test
model for train, eval and merge), runs the command once without a kill to measure its duration
and keep its outputs as the reference, then, per kill, copies the prepared store, starts the
command, sends SIGKILL after a delay drawn uniformly from [0, 1.05 x duration] (seeded: the seed
and every delay are printed, so a violation can be replayed with --seed and --only), and checks:

  - SQLite: PRAGMA integrity_check is ok, foreign_key_check is empty;
  - every snapshot verifies (`corpus snapshot verify`), every finished run's adapter verifies
    (`corpus lineage adapter --verify`);
  - nothing half-registered: each source has exactly rows_read = records + rejects rows; each
    snapshot has exactly its recorded members, train and eval counts; each check configuration has
    the same number of verdicts for every check; each evaluation has all its items; withdrawals are
    all or nothing and every erased record's text is gone; no run shows `running` (its process is
    gone: `killed`) and a finished run has its adapter;
  - no half-written output in place: an export folder, adapter folder, checkpoint or merged model
    either does not exist or is complete and byte-identical to the reference (exports, merges and
    adapters are deterministic);
  - train: when a checkpoint exists, `train --resume` ends with an adapter byte-identical to the
    uninterrupted run's.

Hidden temporaries a SIGKILL leaves beside an output (`.NAME.UUID.tmp`) are counted as litter, not
as violations: they are never at the output's path. Exits 1 when any violation was found.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ALL = ["ingest", "check", "snapshot-create", "export", "train", "eval", "forget", "merge"]
MODEL_DEFAULT = os.path.expanduser("~/.cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf")
# Small enough for hundreds of runs on two cores: 3 steps of 128 tokens, rank 4 on q and v, a
# checkpoint after every step, on a snapshot without an eval split (no eval passes).
TRAIN_OPTIONS = ["--max-steps", "3", "--batch-tokens", "128", "--max-len", "64", "--eval-every", "0",
                 "--checkpoint-every", "1", "--seed", "3", "--rank", "4", "--targets", "q,v"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def synthetic_csv(path, rows, seed, offset=0):
    """Question-answer rows with the defects the checks look for (duplicates, near duplicates,
    empty answers, phone numbers), deterministic for a seed."""
    rng = random.Random(seed)
    words = ("blood pressure insulin fever cough dosage tablet morning evening child adult kidney liver "
             "headache allergy vaccine diet exercise sleep water salt sugar heart lung skin bone").split()
    depts = ["internal", "pediatrics", "surgery", "dermatology"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("department,question,answer\n")
        line = ""
        for i in range(rows):
            if i % 50 == 1 and i > 1:
                f.write(line)      # an exact duplicate of the row before
                continue
            q = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18)))
            a = " ".join(rng.choice(words) for _ in range(rng.randint(12, 60)))
            if i % 97 == 0:
                a = ""
            if i % 89 == 0:
                a += " call 138%08d" % (i + offset)
            line = '%s,"Q%d %s?","%s"\n' % (depts[i % 4], i + offset, q, a)
            f.write(line)


class Corpus:
    def __init__(self, binary):
        self.binary = binary

    def argv(self, args, db):
        return [self.binary] + args + ["--db", db]

    def run(self, args, db, check=True, timeout=1800):
        p = subprocess.run(self.argv(args, db), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=clean_env())
        if check and p.returncode != 0:
            raise RuntimeError("corpus %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.decode()[-2000:]))
        return p


def clean_env():
    env = dict(os.environ)
    env.pop("CORPUS_DB", None)
    return env


def copy_store(src, dst):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(src + suffix):
            shutil.copyfile(src + suffix, dst + suffix)


def litter(*folders):
    n = 0
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                if name.startswith(".") and (name.endswith(".tmp") or name.endswith(".old")):
                    n += 1
    return n


class Harness:
    def __init__(self, args):
        self.args = args
        self.corpus = Corpus(os.path.abspath(args.binary))
        self.work = args.work or tempfile.mkdtemp(prefix="corpus-crash-")
        os.makedirs(self.work, exist_ok=True)
        self.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.model = args.model
        self.reference = {}
        self.templates = {}

    # -- preparation -------------------------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def prepare(self, commands):
        c = self.corpus
        os.makedirs(self.path("data"), exist_ok=True)
        self.inputs = []
        for k in range(3):
            p = self.path("data", "part%d.csv" % k)
            synthetic_csv(p, self.args.rows // 3, seed=k, offset=k * self.args.rows)
            self.inputs.append(p)
        big = self.path("big.db")
        c.run(["init"], big)
        self.templates["ingest"] = self.snapshot_template(big, "t-ingest")
        c.run(["ingest"] + self.inputs, big)
        self.templates["check"] = self.snapshot_template(big, "t-check")
        c.run(["check"], big)
        self.templates["snapshot-create"] = self.snapshot_template(big, "t-snap")
        c.run(["snapshot", "create", "big", "--eval-ratio", "0.1"], big)
        self.templates["export"] = self.snapshot_template(big, "t-export")
        self.templates["forget"] = self.templates["export"]
        if any(cmd in commands for cmd in ("train", "eval", "merge")):
            small = self.path("small.db")
            c.run(["init"], small)
            c.run(["ingest", os.path.join(self.root, "examples/medical/medical_qa.csv")], small)
            c.run(["ingest", os.path.join(self.root, "examples/legal/legal_qa.jsonl"),
                   "--map", "user=query,assistant=response,tag.laws=laws"], small)
            c.run(["check"], small)
            c.run(["snapshot", "create", "demo", "--eval-ratio", "0.2"], small)
            c.run(["snapshot", "create", "tiny", "--eval-ratio", "0"], small)
            self.templates["train"] = self.snapshot_template(small, "t-train")
            adapter = self.path("adapter")
            shutil.rmtree(adapter, ignore_errors=True)
            c.run(["train", "tiny", "--model", self.model, "--out", adapter] + TRAIN_OPTIONS, small)
            self.trained_adapter = adapter
            self.templates["eval"] = self.snapshot_template(small, "t-eval")
            self.templates["merge"] = self.templates["eval"]

    def snapshot_template(self, db, name):
        """A copy of the store as it is now (WAL folded into the file first)."""
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        dst = self.path(name + ".db")
        copy_store(db, dst)
        return dst

    # -- one command --------------------------------------------------------------------------

    def command(self, name, trial):
        """(argv without --db, output paths) of one run of `name` inside the trial folder."""
        if name == "ingest":
            return ["ingest"] + self.inputs, {}
        if name == "check":
            return ["check"], {}
        if name == "snapshot-create":
            return ["snapshot", "create", "big2", "--eval-ratio", "0.1"], {}
        if name == "export":
            out = os.path.join(trial, "export")
            return ["snapshot", "export", "big", "--format", "sharegpt", "--out", out], {"export": out}
        if name == "forget":
            return ["forget", "--source", "2", "--reason", "crash test"], {}
        if name == "train":
            out = os.path.join(trial, "adapter")
            return ["train", "tiny", "--model", self.model, "--out", out] + TRAIN_OPTIONS, {"adapter": out}
        if name == "eval":
            return ["eval", "demo", "--model", self.model, "--adapter", self.trained_adapter, "--max-new-tokens", "8"], {}
        if name == "merge":
            out = os.path.join(trial, "merged")
            return ["merge", "--adapter", self.trained_adapter, "--model", self.model, "--out", out], {"merged": out}
        raise ValueError(name)

    def new_trial(self, name, label):
        trial = self.path("trials", "%s-%s" % (name, label))
        shutil.rmtree(trial, ignore_errors=True)
        os.makedirs(trial)
        db = os.path.join(trial, "corpus.db")
        copy_store(self.templates[name], db)
        return trial, db

    def measure(self, name):
        trial, db = self.new_trial(name, "reference")
        argv, outputs = self.command(name, trial)
        start = time.monotonic()
        self.corpus.run(argv, db)
        duration = time.monotonic() - start
        ref = {"duration": duration, "db": db, "outputs": outputs}
        for kind, out in outputs.items():
            ref[kind] = {f: sha256(os.path.join(out, f)) for f in sorted(os.listdir(out)) if os.path.isfile(os.path.join(out, f))}
        self.reference[name] = ref
        problems = self.check(name, trial, db, outputs, killed_at=None)
        if problems:
            raise RuntimeError("the uninterrupted %s already breaks an invariant: %s" % (name, problems))
        return duration

    def kill_once(self, name, index, delay):
        trial, db = self.new_trial(name, "kill%03d" % index)
        argv, outputs = self.command(name, trial)
        p = subprocess.Popen(self.corpus.argv(argv, db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, env=clean_env())
        time.sleep(delay)
        landed = p.poll() is None
        if landed:
            p.send_signal(signal.SIGKILL)
        p.wait()
        landed = landed and p.returncode == -signal.SIGKILL
        problems = self.check(name, trial, db, outputs, killed_at=delay)
        resumed = None
        if name == "train" and not problems and not self.finished_run(db):
            resumed, more = self.resume(trial, db, outputs["adapter"])
            problems += more
        n_litter = litter(trial)
        if not problems and not self.args.keep:
            shutil.rmtree(trial, ignore_errors=True)
        return landed, problems, resumed, n_litter

    def finished_run(self, db):
        """True when the killed train had already recorded its run as finished (a checkpoint left
        beside the finished adapter is stale then, and --resume refuses it)."""
        runs = json.loads(self.corpus.run(["runs", "list", "--json"], db).stdout)
        return any(r["status"] == "finished" for r in runs)

    def resume(self, trial, db, out):
        """After a killed train: resume from the checkpoint if there is one; the adapter must equal
        the uninterrupted run's, byte for byte."""
        checkpoint = os.path.join(out, "checkpoint")
        if not os.path.isdir(checkpoint):
            return False, []
        p = self.corpus.run(["train", "tiny", "--model", self.model, "--resume", checkpoint] + TRAIN_OPTIONS, db, check=False)
        if p.returncode != 0:
            return True, ["train --resume failed (%d): %s" % (p.returncode, p.stderr.decode()[-500:])]
        problems = self.check("train", trial, db, {"adapter": out}, killed_at=None)
        got = sha256(os.path.join(out, "adapter_model.safetensors"))
        want = self.reference["train"]["adapter"]["adapter_model.safetensors"]
        if got != want:
            problems.append("resumed adapter sha256 %s differs from the uninterrupted run's %s" % (got[:12], want[:12]))
        runs = json.loads(self.corpus.run(["runs", "list", "--json"], db).stdout)
        if [r["status"] for r in runs] != ["finished"]:
            problems.append("after the resume the runs are %s, not one finished run" % [r["status"] for r in runs])
        return True, problems

    # -- invariants ---------------------------------------------------------------------------

    def check(self, name, trial, db, outputs, killed_at):
        problems = []
        if not os.path.exists(db):
            return ["the store file is gone"]
        try:
            con = sqlite3.connect(db, timeout=30)
            q = lambda sql, *a: con.execute(sql, a).fetchall()
            integrity = q("PRAGMA integrity_check")
            if integrity != [("ok",)]:
                problems.append("integrity_check: %s" % integrity[:5])
            fk = q("PRAGMA foreign_key_check")
            if fk:
                problems.append("foreign_key_check: %s" % fk[:5])
            for sid, read, added, rejected in q("SELECT id, rows_read, records_added, rows_rejected FROM sources"):
                records = q("SELECT count(*) FROM records WHERE source_id = ?", sid)[0][0]
                rejects = q("SELECT count(*) FROM rejects WHERE source_id = ?", sid)[0][0]
                if (records, rejects) != (added, rejected) or read != added + rejected:
                    problems.append("source %d half-registered: %d/%d records, %d/%d rejects, %d rows read" % (sid, records, added, rejects, rejected, read))
            for sid, label, n, train, ev in q("SELECT id, name || '@' || version, records, train, eval FROM snapshots"):
                counts = dict(q("SELECT split, count(*) FROM snapshot_records WHERE snapshot_id = ? GROUP BY split", sid))
                if (counts.get("train", 0), counts.get("eval", 0)) != (train, ev) or train + ev != n:
                    problems.append("snapshot %s half-registered: members %s, recorded %d (%d train, %d eval)" % (label, counts, n, train, ev))
            for config, in q("SELECT hash FROM check_configs"):
                # Verdicts are packed one row per record (bit i of `ran`: check i judged it).
                sums = q("SELECT " + ", ".join("SUM((ran >> %d) & 1)" % b for b in range(16)) +
                         " FROM verdicts WHERE config_id = (SELECT id FROM check_configs WHERE hash = ?)", config)[0]
                per = [(b, c) for b, c in enumerate(sums) if c]
                if not per or len(set(c for _, c in per)) != 1:
                    problems.append("check configuration %s half-registered: verdicts per check %s" % (config[:12], per))
            for eid, items, adapter in q("SELECT id, items, adapter_path FROM evals"):
                stored = q("SELECT count(*) FROM eval_items WHERE eval_id = ?", eid)[0][0]
                if stored != items * (2 if adapter else 1):
                    problems.append("eval %d half-registered: %d item rows for %d items" % (eid, stored, items))
            withdrawn = q("SELECT count(*) FROM withdrawals")[0][0]
            if withdrawn not in (0, q("SELECT count(*) FROM records WHERE source_id = 2 OR content_hash IN (SELECT content_hash FROM records WHERE source_id = 2)")[0][0]) and name == "forget":
                problems.append("forget half-done: %d withdrawals" % withdrawn)
            leaked = q("""SELECT count(*) FROM withdrawals w JOIN records r ON r.id = w.record_id
                          WHERE w.erased = 1 AND r.conversation != '{"messages":[]}'""")[0][0]
            if leaked:
                problems.append("%d erased withdrawals still have their text" % leaked)
            erased = q("""SELECT count(*) FROM records WHERE conversation = '{"messages":[]}'
                          AND id NOT IN (SELECT record_id FROM withdrawals)""")[0][0]
            if erased:
                problems.append("%d records erased without a withdrawal" % erased)
            con.close()
        except sqlite3.DatabaseError as e:
            return problems + ["SQLite cannot read the store: %s" % e]

        verify = self.corpus.run(["snapshot", "verify", "--json"], db, check=False)
        if verify.returncode != 0:
            problems.append("snapshot verify exit %d: %s" % (verify.returncode, verify.stderr.decode()[-300:]))
        runs_p = self.corpus.run(["runs", "list", "--json"], db, check=False)
        if runs_p.returncode != 0:
            problems.append("runs list exit %d: %s" % (runs_p.returncode, runs_p.stderr.decode()[-300:]))
        else:
            for r in json.loads(runs_p.stdout):
                if r["status"] == "running":
                    problems.append("run %d shows running but no corpus process is alive" % r["id"])
                if r["status"] == "finished":
                    if not r.get("adapter_path"):
                        problems.append("run %d finished without an adapter" % r["id"])
                    else:
                        v = self.corpus.run(["lineage", "adapter", r["adapter_path"], "--verify"], db, check=False)
                        if v.returncode != 0:
                            problems.append("run %d: lineage adapter --verify exit %d" % (r["id"], v.returncode))

        ref = self.reference.get(name, {})
        for kind, out in outputs.items():
            problems += self.check_output(kind, out, ref.get(kind))
        return problems

    def check_output(self, kind, out, reference):
        if not os.path.exists(out):
            return []
        files = {f for f in os.listdir(out) if os.path.isfile(os.path.join(out, f)) and not f.startswith(".")}
        problems = []
        if kind in ("export", "merged"):
            if reference is None:
                return []
            if files != set(reference):
                return ["%s %s in place but incomplete: %s, expected %s" % (kind, out, sorted(files), sorted(reference))]
            for f, digest in reference.items():
                if sha256(os.path.join(out, f)) != digest:
                    problems.append("%s %s/%s differs from the uninterrupted run's" % (kind, out, f))
            return problems
        if kind == "adapter":
            pair = {"adapter_model.safetensors", "adapter_config.json"}
            if files & pair and not pair <= files:
                problems.append("adapter folder %s holds %s without %s" % (out, sorted(files & pair), sorted(pair - files)))
            elif pair <= files and reference is not None:
                for f in pair:
                    if sha256(os.path.join(out, f)) != reference[f]:
                        problems.append("adapter %s/%s in place differs from the uninterrupted run's" % (out, f))
            checkpoint = os.path.join(out, "checkpoint")
            if os.path.exists(checkpoint):
                want = {"adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors", "trainer_state.json"}
                have = {f for f in os.listdir(checkpoint) if not f.startswith(".")}
                if have != want:
                    problems.append("checkpoint %s incomplete: %s" % (checkpoint, sorted(have)))
        return problems

    # -- the whole run ------------------------------------------------------------------------

    def main(self):
        a = self.args
        commands = a.commands.split(",") if a.commands else ALL
        for cmd in commands:
            if cmd not in ALL:
                sys.exit("unknown command %s; choose from %s" % (cmd, ", ".join(ALL)))
        print("crash harness: binary %s, seed %d, %d kills per command, work %s" % (self.corpus.binary, a.seed, a.kills, self.work), flush=True)
        self.prepare(commands)
        table = []
        failed = False
        for cmd in commands:
            duration = self.measure(cmd)
            rng = random.Random("%d/%s" % (a.seed, cmd))
            delays = [rng.uniform(0, 1.05 * duration) for _ in range(a.kills)]
            print("%s: %.2f s uninterrupted; kill times drawn from [0, %.2f] s" % (cmd, duration, 1.05 * duration), flush=True)
            landed = violations = resumed = total_litter = 0
            for i, delay in enumerate(delays):
                if a.only is not None and i != a.only:
                    continue
                hit, problems, did_resume, n_litter = self.kill_once(cmd, i, delay)
                landed += hit
                resumed += bool(did_resume)
                total_litter += n_litter
                status = "ok" if not problems else "VIOLATION"
                print("  %s kill %d at %.3f s: %s%s%s" % (cmd, i, delay, "killed" if hit else "already ended", ", resumed" if did_resume else "",
                                                        "" if not problems else ""), end="")
                print(" -> %s" % status, flush=True)
                for p in problems:
                    print("      %s" % p, flush=True)
                if problems:
                    violations += 1
                    print("      replay: %s --binary %s --commands %s --seed %d --kills %d --only %d --keep" % (sys.argv[0], a.binary, cmd, a.seed, a.kills, i), flush=True)
            kills = a.kills if a.only is None else 1
            table.append((cmd, kills, landed, violations, resumed if cmd == "train" else "", total_litter, "%.2f" % duration))
            failed = failed or violations > 0
        print()
        header = ("command", "kills", "landed before the end", "violations", "resumed", "litter", "duration s")
        rows = [header] + [tuple(str(x) for x in r) for r in table]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
        if not a.keep and not failed:
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the corpus executable")
    ap.add_argument("--commands", help="comma-separated, from: " + ", ".join(ALL) + " (default: all)")
    ap.add_argument("--kills", type=int, default=50, help="kills per command")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000, help="seed of the kill times (printed)")
    ap.add_argument("--only", type=int, help="replay only this kill index")
    ap.add_argument("--rows", type=int, default=30000, help="rows of the synthetic CSV files (three files)")
    ap.add_argument("--model", default=MODEL_DEFAULT, help="the test model (.gguf) for train, eval and merge")
    ap.add_argument("--work", help="working folder (default: a new temporary folder, removed when all is well)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args()
    sys.exit(Harness(args).main())


if __name__ == "__main__":
    main()
