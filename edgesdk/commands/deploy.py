"""edgesdk deploy MODEL --target TARGET [--device NAME] [--recipe R] [--calib F] [--runs N] [--json]"""

from __future__ import annotations

from ._common import add_json_flag, add_recipe_flags, print_json, recipe_options
from .profile import add_device_flags


def add_parser(sub):
    p = sub.add_parser(
        "deploy",
        help="convert a model for a target, push it to a device of that target and profile it there",
        description="Import, quantize and export MODEL for TARGET (as 'edgesdk convert'), then profile the artifact on "
        "--device, or on the first device of that target in devices.yaml (the local device for --target host).",
    )
    p.add_argument("model", help="an .onnx file, or a .py file whose build_model() returns (nn.Module, example_inputs)")
    p.add_argument("--target", required=True, help="a target in targets/, e.g. host, rpi4")
    p.add_argument("--device", action="append", default=[], help="a device in devices.yaml (default: the first of the "
                   "target); repeat it to deploy to several devices at once")
    p.add_argument("--recipe", default=None, help="quantization recipe (default: the target's)")
    p.add_argument("--calib", metavar="NPZ", help="calibration data: one array per model input, first axis = samples")
    p.add_argument("--reference", metavar="NPZ", help="reference inputs for on-device accuracy (default: --calib)")
    p.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE", help="a recipe option (repeatable)")
    p.add_argument("-o", "--out", metavar="OUT_DIR", help="artifact directory (default: out/<model>-<target>-<recipe>)")
    add_device_flags(p)
    add_recipe_flags(p)
    add_json_flag(p)
    return p


def run(args) -> int:
    from ..devices.api import deploy, deploy_fleet
    from .profile import fleet_devices, profile_options

    fleet = fleet_devices(args)
    if fleet is not None:
        from ._profile_output import report_fleet

        artifact, outcomes = deploy_fleet(args.model, args.target, fleet, recipe=args.recipe, calibration=args.calib,
                                          out_dir=args.out, reference_data=args.reference,
                                          recipe_options=recipe_options(args), **profile_options(args))
        return report_fleet(artifact, outcomes, args.json)
    result = deploy(args.model, target=args.target, device=(args.device or [None])[0], recipe=args.recipe,
                    calibration=args.calib, out_dir=args.out, reference_data=args.reference, devices=args.devices,
                    **profile_options(args), **recipe_options(args))
    if args.json:
        print_json(result.to_json())
        return 0
    from ._profile_output import print_profile

    print(f"artifact: {result.artifact}")
    print_profile(result)
    return 0
