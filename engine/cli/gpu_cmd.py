"""`tunesmith-cli gpu [--install | --remove]`: which device training uses, why a graphics card is not used,
and GPU support (the CUDA build of PyTorch in the data folder) for a processor-only install."""
from __future__ import annotations

import dataclasses
import json


def register(sub) -> None:
    parser = sub.add_parser("gpu", help="Say which device training uses; install or remove GPU support.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--install", action="store_true",
                       help="Download the CUDA build of PyTorch into the data folder (sizes shown first).")
    group.add_argument("--remove", action="store_true", help="Delete GPU support and train on the processor.")
    parser.add_argument("--yes", action="store_true", help="Do not ask before installing.")
    parser.add_argument("--json", action="store_true", help="Print the facts and the verdict as JSON.")
    parser.set_defaults(func=run)


def run(args) -> int:
    from engine import gpu_check, gpu_runtime

    if args.remove:
        gpu_runtime.remove()
        print("GPU support removed.")
        return 0
    if args.install:
        plan = gpu_runtime.plan()
        print(f"GPU support: {len(plan.files)} files, {plan.describe()}.")
        if not args.yes and input("Install? Type yes: ").strip().lower() != "yes":
            return 1
        last = [-1]

        def show(message: str, fraction: float) -> None:
            if int(fraction * 20) != last[0]:  # a line every 5 %
                last[0] = int(fraction * 20)
                print(message, flush=True)

        print(f"Installed in {gpu_runtime.install(plan, show)}.")
        return 0
    smi, facts = gpu_check.smi_facts(), gpu_check.torch_facts()
    report = gpu_check.diagnose(smi, facts)
    if args.json:
        print(json.dumps({"device": report.device, "summary": report.summary, "problem": report.problem,
                          "action": report.action, "fix": report.fix, "torch": facts,
                          "nvidia_smi": dataclasses.asdict(smi) if smi else None,
                          "gpu_support": gpu_runtime.installed()}, indent=2))
        return 0
    build = f"CUDA {facts['cuda_build']} build" if facts["cuda_build"] else "processor-only build"
    print(f"PyTorch {facts['torch']} ({build}, {facts['path']})")
    print(report.summary)
    for line in (report.problem, report.action):
        if line:
            print(line)
    if report.fix == "install-gpu-support":
        print("Run `tunesmith-cli gpu --install`, or use the button in the window's Method view.")
    return 0
