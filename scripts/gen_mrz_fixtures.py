#!/usr/bin/env python3
"""Writes MRZ cross-check cases made by an independent implementation, the PyPI package
`mrz` (generator and checker): valid documents of every format, and for each one a copy with
a single character changed in a check-digit-protected field, which must be refused.

Usage: gen_mrz_fixtures.py OUT.tsv [SEED] [COUNT]
Each line: valid|invalid <TAB> format <TAB> document number <TAB> birth YYMMDD <TAB> lines joined by '|'
"""
import random
import sys

from mrz.checker.td1 import TD1CodeChecker
from mrz.checker.td2 import TD2CodeChecker
from mrz.checker.td3 import TD3CodeChecker
from mrz.checker.mrva import MRVACodeChecker
from mrz.checker.mrvb import MRVBCodeChecker
from mrz.generator.td1 import TD1CodeGenerator
from mrz.generator.td2 import TD2CodeGenerator
from mrz.generator.td3 import TD3CodeGenerator
from mrz.generator.mrva import MRVACodeGenerator
from mrz.generator.mrvb import MRVBCodeGenerator

STATES = ["D", "FRA", "GBR", "USA", "ITA", "ESP", "NLD", "JPN", "CHN", "IND", "BRA", "CAN",
          "AUS", "RUS", "UKR", "POL", "SWE", "NOR", "MEX", "ARG", "NGA", "EGY", "TUR", "KOR"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def word(r, lo=3, hi=9):
    return "".join(r.choice(LETTERS) for _ in range(r.randint(lo, hi)))


def docnum(r):
    return "".join(r.choice(LETTERS + "0123456789") for _ in range(9))


def yymmdd(r, y0, y1):
    return "%02d%02d%02d" % (r.randint(y0, y1) % 100, r.randint(1, 12), r.randint(1, 28))


CHECKERS = {"TD1": TD1CodeChecker, "TD2": TD2CodeChecker, "TD3": TD3CodeChecker,
            "MRV-A": MRVACodeChecker, "MRV-B": MRVBCodeChecker}


def peer_accepts(kind, lines):
    try:
        return bool(CHECKERS[kind]("\n".join(lines)))
    except Exception:
        return False


def make(r, kind):
    surname, given = word(r), word(r) + " " + word(r)
    state, nat = r.choice(STATES), r.choice(STATES)
    num, birth, expiry, sex = docnum(r), yymmdd(r, 1940, 2005), yymmdd(r, 2027, 2035), r.choice("MF")
    if kind == "TD1":
        code = TD1CodeGenerator("ID", state, num, birth, sex, expiry, nat, surname, given, "", "")
        ok = bool(TD1CodeChecker(str(code)))
    elif kind == "TD2":
        code = TD2CodeGenerator("I", state, surname, given, num, nat, birth, sex, expiry, "")
        ok = bool(TD2CodeChecker(str(code)))
    elif kind == "TD3":
        code = TD3CodeGenerator("P", state, surname, given, num, nat, birth, sex, expiry, word(r, 5, 10))
        ok = bool(TD3CodeChecker(str(code)))
    elif kind == "MRV-A":
        code = MRVACodeGenerator("V", state, surname, given, num, nat, birth, sex, expiry, "")
        ok = bool(MRVACodeChecker(str(code)))
    else:
        code = MRVBCodeGenerator("V", state, surname, given, num, nat, birth, sex, expiry, "")
        ok = bool(MRVBCodeChecker(str(code)))
    assert ok, f"the peer refused its own {kind}: {code}"
    return str(code).strip().split("\n"), num, birth


# Positions (line, column range) of check-digit-protected data per format.
PROTECTED = {
    "TD1": [(0, 5, 14), (1, 0, 6), (1, 8, 14)],
    "TD2": [(1, 0, 9), (1, 13, 19), (1, 21, 27)],
    "TD3": [(1, 0, 9), (1, 13, 19), (1, 21, 27)],
    "MRV-A": [(1, 0, 9), (1, 13, 19), (1, 21, 27)],
    "MRV-B": [(1, 0, 9), (1, 13, 19), (1, 21, 27)],
}


def mutate(r, lines, kind):
    li, a, b = r.choice(PROTECTED[kind])
    line = list(lines[li])
    i = r.randrange(a, b)
    old = line[i]
    pool = "0123456789" if old.isdigit() else LETTERS
    line[i] = r.choice([c for c in pool if c != old])
    out = list(lines)
    out[li] = "".join(line)
    return out


def main():
    out = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 9303
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    r = random.Random(seed)
    with open(out, "w") as f:
        for kind in ["TD1", "TD2", "TD3", "MRV-A", "MRV-B"]:
            for _ in range(count):
                lines, num, birth = make(r, kind)
                f.write(f"valid\t{kind}\t{num}\t{birth}\t{'|'.join(lines)}\n")
                mutated = mutate(r, lines, kind)
                # The verdict is the peer's: a letter swapped for one 10 places away leaves the
                # weighted sum unchanged, so not every mutation is detectable.
                verdict = "valid" if peer_accepts(kind, mutated) else "invalid"
                f.write(f"{verdict}\tmutated-{kind}\t-\t-\t{'|'.join(mutated)}\n")


if __name__ == "__main__":
    main()
