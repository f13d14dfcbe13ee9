#!/usr/bin/env python3
"""Two personad hosts on one PostgreSQL store, paused and resumed at random moments.

Each round drops a batch of 40 personas into the shared batches.d, waits a random moment, then
stops one host (SIGSTOP) and resumes it (SIGCONT): most pauses are 0.6-1.5 s, past the server's
idle-in-transaction limit (takeover_after / 6), so a pause inside a transaction loses that
connection; about one in three is 4-6 s, past takeover_after (3 s), so the other host takes the
lease and the paused one must stop with exit status 1 when it wakes. A host that ended is started
again (as systemd's Restart= would). Any other end (a signal, a sanitizer report) stops the soak
with exit status 2 and the end of that host's log; at the end no job may hold more than one
persona on the simulator (its own list, by personad's label).

Timing-driven, so not a CTest test: a soak to run by hand, best with the ASan build, where it found
a use-after-free of the io_context after a lost lease (docs/design.md). Needs a PostgreSQL server
(PGHOST, PGPORT, PGUSER as libpq reads them): run it under scripts/with-pg.sh.

  scripts/with-pg.sh python3 scripts/standby-soak.py --build build-asan --rounds 50 --seed 5
"""
import argparse
import collections
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

PAUSE_SHORT = (0.6, 1.5)
PAUSE_LONG = (4.0, 6.0)
TAKEOVER_AFTER = "3s"
JOBS_PER_ROUND = 40


def config_text(port, url, directory, name):
    return f'''[api]
base_url = "http://127.0.0.1:{port}"
timeout = "2s"
max_requests_per_second = 200.0
max_in_flight = 4
retry_initial = "100ms"
retry_max = "1s"
reconcile_after = "1s"
[store]
url = "{url}"
takeover_after = "{TAKEOVER_AFTER}"
[batches]
directory = "{directory / 'batches.d'}"
[poll]
first_after = "300ms"
initial_interval = "300ms"
multiplier = 1.5
max_interval = "1s"
jitter = 0.2
give_up_after = "10m"
[control]
socket = "{directory / (name + '.sock')}"
[log]
level = "debug"
'''


def batch_text(round_no):
    out = []
    for k in range(JOBS_PER_ROUND):
        out.append(f'[[persona]]\nkey = "r{round_no}-{k}"\ngender = "f"\n'
                   f'creator_name = "Soak {round_no} {k}"\nvideo_scene = "office"\n'
                   f'keywords = "soak"\n'
                   f'lipsync_input = "https://cdn.example.com/{round_no}-{k}/lipsync.mp4"\n'
                   f'consent_video = "https://cdn.example.com/{round_no}-{k}/consent.mp4"\n')
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="build directory with personad, personactl, creatify-sim")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()
    if "PGPORT" not in os.environ and "PGHOST" not in os.environ:
        sys.exit("standby-soak: no PostgreSQL server in the environment: run it under scripts/with-pg.sh")
    random.seed(args.seed)
    build = pathlib.Path(args.build).resolve()
    work = pathlib.Path(tempfile.mkdtemp(prefix="personad-soak-"))
    (work / "batches.d").mkdir()
    db = f"personad_soak_{os.getpid()}"
    subprocess.run(["createdb", db], check=True)
    url = (f"postgresql://{os.environ.get('PGUSER', 'postgres')}@{os.environ.get('PGHOST', 'localhost')}"
           f":{os.environ.get('PGPORT', '5432')}/{db}")
    env = dict(os.environ, CREATIFY_API_ID="soak-id", CREATIFY_API_KEY="soak-key")

    sim = subprocess.Popen(
        [str(build / "creatify-sim"), "--listen", "127.0.0.1:0", "--port-file", str(work / "sim.port"),
         "--api-id", "soak-id", "--api-key", "soak-key", "--time-scale", "20000", "--seed",
         str(args.seed), "--slow-create", "0.3", "--slow-create-ms", "300"],
        stdout=open(work / "sim.out", "w"), stderr=open(work / "sim.err", "w"))
    deadline = time.monotonic() + 10
    while not (work / "sim.port").exists() or not (work / "sim.port").read_text().strip():
        if time.monotonic() > deadline:
            sys.exit("standby-soak: creatify-sim did not start")
        time.sleep(0.05)
    port = int((work / "sim.port").read_text())

    def start(name):
        cfg = work / f"{name}.toml"
        cfg.write_text(config_text(port, url, work, name))
        return subprocess.Popen([str(build / "personad"), "--config", str(cfg)], env=env,
                                stdout=open(work / f"{name}.out", "a"),
                                stderr=open(work / f"{name}.log", "a"))

    hosts = {"a": start("a")}
    time.sleep(1.0)
    hosts["b"] = start("b")
    time.sleep(1.0)
    ends = {"a": 0, "b": 0}
    failed = False
    for r in range(args.rounds):
        for name, p in list(hosts.items()):
            if p.poll() is None:
                continue
            if p.returncode != 1:
                print(f"round {r}: host {name} ended with {p.returncode} (expected 1, a lost lease)")
                os.system(f"tail -40 {work / (name + '.log')}")
                failed = True
                break
            ends[name] += 1
            hosts[name] = start(name)
        if failed:
            break
        (work / "batches.d" / f"round-{r}.toml").write_text(batch_text(r))
        time.sleep(random.uniform(0.2, 1.5))
        victim = random.choice(sorted(hosts))
        pause = random.uniform(*(PAUSE_LONG if random.random() < 0.3 else PAUSE_SHORT))
        hosts[victim].send_signal(signal.SIGSTOP)
        time.sleep(pause)
        hosts[victim].send_signal(signal.SIGCONT)

    duplicates = 0
    if not failed:
        time.sleep(3)
        # At most one persona per job on the simulator (its own list, by personad's label),
        # whatever happened to the hosts.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/personas") as answer:
            personas = json.load(answer)
        per_job = collections.Counter(
            label for p in personas for label in p.get("labels", []) if label.startswith("personad:"))
        duplicates = sum(1 for n in per_job.values() if n > 1)
        print(f"{len(per_job)} jobs with a persona on the simulator, {duplicates} with more than one")
    for p in hosts.values():
        if p.poll() is None:
            p.terminate()
            p.wait()
    sim.terminate()
    sim.wait()
    print(f"lease losses that ended a host with status 1: a {ends['a']}, b {ends['b']}")
    if failed or duplicates:
        print(f"standby-soak: FAILED (kept {work})")
        sys.exit(2)
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("standby-soak: ok")


if __name__ == "__main__":
    main()
