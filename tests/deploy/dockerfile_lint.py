"""A Dockerfile lint in the spirit of hadolint, written for Healthlake's image.

lint(text) returns [(rule, ok, detail)], one entry per rule (rules that look at
every instruction report the first offender). runtime_packages(text) returns
the packages the last stage installs with apt-get.
"""
import os
import re

# Packages the runtime stage may install besides the shared-library owners
# scripts/deploy-libs lists, each with its reason.
NON_LIBRARY_PACKAGES = {
    "ca-certificates": "CA bundle for TLS to Kafka (SASL_SSL) and to S3",
}


def dockerignore_keeps(patterns, path):
    """True when a context path survives the .dockerignore patterns (last match wins;
    "dir/" and "dir" match everything below dir; "**" matches everything)."""
    import fnmatch
    keep = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = (pat[1:] if neg else pat).rstrip("/")
        hit = p == "**" or fnmatch.fnmatch(path, p) or path.startswith(p + "/") or \
            (p.startswith("**/") and fnmatch.fnmatch(os.path.basename(path), p[3:]))
        if hit:
            keep = neg
    return keep


def instructions(text):
    """[(INSTRUCTION, arguments)] with line continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        m = re.match(r"(\w+)\s*(.*)", cur)
        if m:
            out.append((m.group(1).upper(), m.group(2)))
        cur = ""
    return out


def stages(ins):
    """Instructions grouped by FROM."""
    st = []
    for i, a in ins:
        if i == "FROM":
            st.append([(i, a)])
        elif st:
            st[-1].append((i, a))
    return st


def resolve_from(arg, ins):
    args = {}
    for i, a in ins:
        if i == "ARG" and "=" in a and not args.get(a.split("=", 1)[0]):
            k, v = a.split("=", 1)
            args[k.strip()] = v.strip().strip('"')
        if i == "FROM":
            break
    image = arg.split()[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def apt_installs(args):
    """Package names of each `apt-get install` in a RUN (options dropped)."""
    pkgs = []
    for part in re.split(r"&&|;|\|\|", args):
        words = part.split()
        if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
            pkgs.append([w for w in words[words.index("install") + 1:] if not w.startswith("-")])
    return pkgs


def runtime_packages(text):
    st = stages(instructions(text))
    pkgs = set()
    for i, a in st[-1]:
        if i == "RUN":
            for group in apt_installs(a):
                pkgs.update(group)
    return pkgs


def lint(text):
    ins = instructions(text)
    st = stages(ins)
    res = []

    def rule(name, ok, detail=""):
        res.append((name, bool(ok), detail))

    froms = [a for i, a in ins if i == "FROM"]
    images = [resolve_from(a, ins) for a in froms]
    stage_names = {a.split()[-1] for a in froms if " as " in a.lower()}
    external = [im for im in images if im not in stage_names]
    rule("DL3006/DL3007 every base image pinned to a tag or digest, never latest",
         external and all(("@sha256:" in im) or (":" in im and not im.endswith(":latest")) for im in external), external)
    rule("base images are Debian bookworm-slim", external and all(re.match(r"(docker\.io/library/)?debian:bookworm(-\d{8})?-slim", im) for im in external), external)
    rule("multi-stage build (a build stage and a runtime stage)", len(st) >= 2)
    rule("every stage is named (FROM ... AS name)", all(" as " in a.lower() for a in froms), froms)
    adds = [a for i, a in ins if i == "ADD"]
    rule("DL3020 no ADD (COPY files; never ADD URLs or archives)", not adds, adds)
    runs = [a for i, a in ins if i == "RUN"]
    no_recommends = [a for a in runs for g in apt_installs(a) if "--no-install-recommends" not in a]
    rule("DL3015 apt-get install with --no-install-recommends", not no_recommends, no_recommends)
    no_yes = [a for a in runs if apt_installs(a) and not re.search(r"\s(-y|--yes|-qq?y)\b", a)]
    rule("DL3014 apt-get install -y", not no_yes, no_yes)
    not_cleaned = [a for a in runs if apt_installs(a) and "rm -rf /var/lib/apt/lists" not in a]
    rule("DL3009 apt lists removed in the same RUN", not not_cleaned, not_cleaned)
    no_update = [a for a in runs if apt_installs(a) and "apt-get update" not in a]
    rule("DL3009 apt-get update in the same RUN as install", not no_update, no_update)
    upgrade = [a for a in runs if re.search(r"apt(-get)? (dist-)?upgrade", a)]
    rule("DL3005 no apt-get upgrade", not upgrade, upgrade)
    sudo = [a for a in runs if re.search(r"\bsudo\b", a)]
    rule("DL3004 no sudo", not sudo, sudo)
    curlpipe = [a for a in runs if re.search(r"(curl|wget)[^|]*\|\s*(ba)?sh", a)]
    rule("no curl|sh downloads", not curlpipe, curlpipe)
    cd = [a for a in runs if re.match(r"cd\s", a)]
    rule("DL3003 WORKDIR instead of cd", not cd, cd)
    last = st[-1] if st else []
    users = [a for i, a in last if i == "USER"]
    rule("DL3002 runtime stage ends as a non-root USER", users and users[-1].split(":")[0] not in ("root", "0"), users)
    rule("USER is numeric (runAsNonRoot can verify it)", users and re.fullmatch(r"\d+(:\d+)?", users[-1]), users)
    labels = " ".join(a for i, a in last if i == "LABEL")
    need = ["org.opencontainers.image.title", "org.opencontainers.image.version", "org.opencontainers.image.source",
            "org.opencontainers.image.licenses", "org.opencontainers.image.description"]
    rule("OCI labels on the runtime stage", all(n in labels for n in need), [n for n in need if n not in labels])
    rule("STOPSIGNAL SIGTERM", any(i == "STOPSIGNAL" and a.strip() == "SIGTERM" for i, a in last))
    hc = [a for i, a in last if i == "HEALTHCHECK"]
    hc_reason = re.search(r"#.*HEALTHCHECK.*\n(#.*\n)*HEALTHCHECK NONE", text) or re.search(
        r"# No HEALTHCHECK:.*(\n#.*)*\nHEALTHCHECK NONE", text)
    rule("HEALTHCHECK present, or NONE with the reason in a comment", hc and (hc[-1].strip() != "NONE" or hc_reason), hc)
    execform = [a for i, a in ins if i in ("CMD", "ENTRYPOINT") and not a.strip().startswith("[")]
    rule("DL3025 CMD/ENTRYPOINT in exec form (no shell at run time)", not execform, execform)
    rule("runtime stage copies binaries from the build stage, not the build context",
         any(i == "COPY" and "--from=" in a for i, a in last))
    rule("no compiler in the runtime stage", not any(re.search(r"\b(build-essential|gcc|meson|-dev)\b", a)
                                                       for i, a in last if i == "RUN"))
    rule("no secrets in ENV/ARG", not [a for i, a in ins if i in ("ENV", "ARG") and re.search(r"(PASSWORD|SECRET|TOKEN|KEY)=", a, re.I)])
    rule("DL3000 absolute WORKDIR", all(a.startswith("/") for i, a in ins if i == "WORKDIR"))
    pkgs = runtime_packages(text)
    unpinned_ok = True  # Debian packages follow the pinned base image's suite.
    rule("runtime stage installs packages (libraries the binaries need)", pkgs and unpinned_ok, pkgs)
    return res
