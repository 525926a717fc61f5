"""The shipped deployment files of ``hotcfg agent``: the Kubernetes Pod spec
is valid YAML of the structure docs/operations/agent.md describes (an app
container that only reads, an agent sidecar, one memory-backed ``emptyDir``
mounted at the segment directory in both, one ``HOTCFG_NAME``, no shared
PID namespace); the systemd unit passes ``systemd-analyze verify`` where
that command runs, else a structural check of its sections and keys.
tests/process/test_agent.py runs an agent and readers with both files'
settings. And `HOTCFG_PEERS=read` is a setting as any other."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
POD = ROOT / "ops" / "kubernetes" / "pod.yaml"
UNIT = ROOT / "ops" / "systemd" / "hotcfg-agent.service"


def documents():
    with POD.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_parts():
    docs = documents()
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    spec = pod["spec"]
    everyone = spec.get("initContainers", []) + spec["containers"]
    (agent,) = [c for c in everyone if c["command"][-1] == "agent"]
    (app,) = [c for c in spec["containers"] if c is not agent]
    return spec, maps, agent, app


def environment(container, maps):
    """A container's variables: its ConfigMaps', then its own."""
    env = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    return env


def test_the_pod_is_an_app_and_an_agent_sharing_a_memory_backed_segment_dir():
    spec, maps, agent, app = pod_parts()
    assert all(d["apiVersion"] == "v1" for d in documents())
    assert not spec.get("shareProcessNamespace", False)
    # A native sidecar: an init container that keeps running.
    assert agent in spec["initContainers"]
    assert agent["restartPolicy"] == "Always"
    assert agent["command"] == ["hotcfg", "agent"]

    (volume,) = [v for v in spec["volumes"] if "emptyDir" in v]
    assert volume["emptyDir"]["medium"] == "Memory"
    mounts = {
        name: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        for name, c in (("agent", agent), ("app", app))
    }
    assert mounts["agent"][volume["name"]] == mounts["app"][volume["name"]]

    agent_env, app_env = environment(agent, maps), environment(app, maps)
    assert app_env["HOTCFG_PEERS"] == "read"
    assert agent_env.get("HOTCFG_PEERS", "auto") != "read"
    shared = ("HOTCFG_SOURCE", "HOTCFG_NAME", "HOTCFG_SEGMENT_DIR")
    assert all(agent_env[k] == app_env[k] for k in shared)
    # The segment directory is under the shared mount, in both containers.
    segment_dir = Path(app_env["HOTCFG_SEGMENT_DIR"])
    assert segment_dir.is_relative_to(mounts["app"][volume["name"]])
    # One user for both: the segment files are private to it.
    assert spec["securityContext"]["runAsUser"]
    assert not any("runAsUser" in c.get("securityContext", {}) for c in (agent, app))
    # The agent reads the source; the app needs only its name.
    source = Path(agent_env["HOTCFG_SOURCE"])
    config_mounts = [
        m for m in agent["volumeMounts"] if source.is_relative_to(m["mountPath"])
    ]
    assert config_mounts, "the agent does not mount the source's directory"


def unit_sections():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    # Repeated keys (Environment=) are kept by systemd; configparser keeps
    # the last, which is enough for the structure.
    parser.read_string(UNIT.read_text())
    return parser


def unit_environment():
    env = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value
    return env


def test_the_unit_file_runs_the_agent_with_a_private_runtime_directory():
    unit = unit_sections()
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    assert service["ExecStart"].split()[-1] == "agent"
    assert service["ExecStart"].split()[0].endswith("/hotcfg")
    assert service["KillSignal"] == "SIGTERM"
    assert service["RuntimeDirectoryMode"] == "0700"
    assert service["RuntimeDirectoryPreserve"] == "yes"
    env = unit_environment()
    assert {"HOTCFG_SOURCE", "HOTCFG_NAME", "HOTCFG_SEGMENT_DIR"} <= set(env)
    runtime = "/run/" + service["RuntimeDirectory"]
    assert Path(env["HOTCFG_SEGMENT_DIR"]).is_relative_to(runtime)
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here: the structural check above stands")
    # The unit as shipped, but ExecStart at this checkout's hotcfg (verify
    # checks that the command exists).
    command = Path(sys.executable).with_name("hotcfg")
    if not command.exists():
        pytest.skip(f"no hotcfg script beside {sys.executable}")
    text = "\n".join(
        f"ExecStart={command} agent" if line.startswith("ExecStart=") else line
        for line in UNIT.read_text().splitlines()
    )
    unit = tmp_path / UNIT.name
    unit.write_text(text + "\n")
    out = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = out.stdout + out.stderr
    if out.returncode != 0 and ("Failed to" in said and "bus" in said.lower()):
        pytest.skip(f"systemd-analyze cannot run here: {said.strip()}")
    assert out.returncode == 0, said
    assert "Unknown" not in said, said
    assert "ignoring" not in said, said


def test_the_operations_page_shows_the_shipped_files_as_they_are():
    page = (ROOT / "docs" / "operations" / "agent.md").read_text()
    for path in (UNIT, POD):
        assert path.read_text().rstrip("\n") in page, f"{path.name} differs"


def test_peers_read_is_a_setting_like_the_others():
    from hotcfg._errors import ConfigError
    from hotcfg._settings import Settings

    assert Settings.resolve({"HOTCFG_PEERS": " Read "}).peers == "read"
    assert Settings.resolve({}, peers="read").peers == "read"
    with pytest.raises(ConfigError, match="HOTCFG_PEERS"):
        Settings.resolve({"HOTCFG_PEERS": "readonly"})
