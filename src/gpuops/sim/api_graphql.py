"""RunPod GraphQL (``POST /graphql``): spot pods, and every pod call of the ``runpod`` SDK (1.12 does
all of them over GraphQL: ``podFindAndDeployOnDemand``, ``myself { pods }``, ``pod``, ``gpuTypes``, stop,
resume, terminate, account keys). Pods are the engine's instances, so a pod made here is visible on
REST v2 and the other way round.

A real GraphQL executor (graphql-core) over a schema written from the shapes in the SDK and docs:
schema errors (unknown field or input field, bad literal) are HTTP 400 with ``errors``; business
errors are HTTP 200 with ``data.<field>: null`` and ``errors[0].message``, as RunPod answers.
"""

from __future__ import annotations

import hashlib
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError, build_schema, graphql, parse, validate

from .api_runpod import NO_CAPACITY
from .engine import Engine, Instance
from .errors import ApiError

SDL = """
scalar Void

enum CloudTypeEnum { ALL SECURE COMMUNITY }
enum PodStatus { CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED }

input EnvironmentVariableInput { key: String!, value: String! }

input PodFindAndDeployOnDemandInput {
  name: String, imageName: String, cloudType: CloudTypeEnum, gpuTypeId: String, gpuCount: Int,
  gpuTypeIdList: [String], supportPublicIp: Boolean, startSsh: Boolean, startJupyter: Boolean,
  volumeInGb: Int, containerDiskInGb: Int, minVcpuCount: Int, minMemoryInGb: Int, dockerArgs: String,
  ports: String, volumeMountPath: String, env: [EnvironmentVariableInput], dataCenterId: String,
  countryCode: String, templateId: String, networkVolumeId: String, allowedCudaVersions: [String],
  minDownload: Int, minUpload: Int, stopAfter: String, terminateAfter: String, cudaVersion: String,
  volumeKey: String, minDisk: Int, deployCost: Float
}

input PodRentInterruptableInput {
  bidPerGpu: Float!,
  name: String, imageName: String, cloudType: CloudTypeEnum, gpuTypeId: String, gpuCount: Int,
  supportPublicIp: Boolean, startSsh: Boolean, startJupyter: Boolean, volumeInGb: Int,
  containerDiskInGb: Int, minVcpuCount: Int, minMemoryInGb: Int, dockerArgs: String, ports: String,
  volumeMountPath: String, env: [EnvironmentVariableInput], dataCenterId: String, countryCode: String,
  templateId: String, networkVolumeId: String, allowedCudaVersions: [String], minDownload: Int,
  minUpload: Int, cudaVersion: String, volumeKey: String
}

input DeployCpuPodInput {
  name: String, imageName: String, cloudType: CloudTypeEnum, startSsh: Boolean, instanceId: String,
  templateId: String, dataCenterId: String, dockerArgs: String, countryCode: String, containerDiskInGb: Int,
  ports: String, volumeMountPath: String, env: [EnvironmentVariableInput], networkVolumeId: String,
  minDownload: Int, minUpload: Int, volumeInGb: Int
}

input PodFilter { podId: String! }
input PodStopInput { podId: String!, incrementVersion: Boolean }
input PodResumeInput { podId: String!, gpuCount: Int, allowedCudaVersions: [String] }
input PodBidResumeInput { podId: String!, bidPerGpu: Float!, gpuCount: Int }
input PodTerminateInput { podId: String! }
input GpuTypeFilter { id: String, ids: [String] }
input GpuLowestPriceInput {
  gpuCount: Int, secureCloud: Boolean, cudaVersion: String, minDisk: Int, minMemoryInGb: Int,
  minVcpuCount: Int, dataCenterId: String, countryCode: String, minDownload: Int, minUpload: Int,
  allowedCudaVersions: [String], includeAiApi: Boolean, supportPublicIp: Boolean
}
input UserSettingsInput { pubKey: String }

type PodRuntimePort { ip: String, isIpPublic: Boolean, privatePort: Int, publicPort: Int, type: String }
type PodRuntimeGpu { id: String, gpuUtilPercent: Int, memoryUtilPercent: Int }
type PodRuntimeContainer { cpuPercent: Int, memoryPercent: Int }
type PodRuntime {
  uptimeInSeconds: Int, ports: [PodRuntimePort], gpus: [PodRuntimeGpu], container: PodRuntimeContainer
}
type GpuType { id: String, displayName: String, memoryInGb: Int }
type PodMachine {
  podHostId: String, gpuDisplayName: String, gpuTypeId: String, gpuType: GpuType, location: String,
  dataCenterId: String, secureCloud: Boolean, supportPublicIp: Boolean
}
type Pod {
  id: String, name: String, desiredStatus: PodStatus, costPerHr: Float, adjustedCostPerHr: Float,
  podType: String, gpuCount: Int, vcpuCount: Int, memoryInGb: Int, containerDiskInGb: Int,
  volumeInGb: Int, volumeMountPath: String, imageName: String, dockerArgs: String, env: [String],
  ports: String, lastStatusChange: String, machineId: String, uptimeSeconds: Int,
  runtime: PodRuntime, machine: PodMachine, bidPerGpu: Float, interruptible: Boolean,
  dockerId: String, port: Int, consumerUserId: String, templateId: String, locked: Boolean,
  volumeEncrypted: Boolean, networkVolumeId: String, containerRegistryAuthId: String
}
type LowestPrice {
  minimumBidPrice: Float, uninterruptablePrice: Float, stockStatus: String,
  availableGpuCounts: [Int], minVcpu: Int, minMemory: Int, maxUnreservedGpuCount: Int
}
type GpuTypeFull {
  id: String, displayName: String, memoryInGb: Int, manufacturer: String, maxGpuCount: Int,
  secureCloud: Boolean, communityCloud: Boolean, securePrice: Float, communityPrice: Float,
  secureSpotPrice: Float, communitySpotPrice: Float, lowestPrice(input: GpuLowestPriceInput): LowestPrice,
  cudaCores: Int, oneWeekPrice: Float, oneMonthPrice: Float, threeMonthPrice: Float, sixMonthPrice: Float,
  oneYearPrice: Float,
  maxGpuCountSecureCloud: Int, maxGpuCountCommunityCloud: Int, minPodGpuCount: Int
}
type NetworkVolume { id: String, name: String, size: Int, dataCenterId: String }
type User {
  id: String, pubKey: String, pods: [Pod], networkVolumes: [NetworkVolume], clientBalance: Float, authId: String,
  email: String, currentSpendPerHr: Float, spendLimit: Int, hostBalance: Float, signedTermsOfService: Boolean,
  multiFactorEnabled: Boolean, machineQuota: Int, referralEarned: Float, templateEarned: Float
}

type Query {
  myself: User
  pod(input: PodFilter!): Pod
  gpuTypes(input: GpuTypeFilter): [GpuTypeFull]
}

type Mutation {
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput!): Pod
  deployCpuPod(input: DeployCpuPodInput!): Pod
  podRentInterruptable(input: PodRentInterruptableInput!): Pod
  podStop(input: PodStopInput!): Pod
  podResume(input: PodResumeInput!): Pod
  podBidResume(input: PodBidResumeInput!): Pod
  podTerminate(input: PodTerminateInput!): Void
  updateUserSettings(input: UserSettingsInput!): User
}
"""

SCHEMA = build_schema(SDL)


def _gql_status(inst: Instance) -> str:
    return {"provisioning": "RUNNING", "starting": "RUNNING", "running": "RUNNING", "exited": "EXITED",
            "error": "EXITED", "terminated": "TERMINATED"}[inst.phase]


def _js_date(ts: float) -> str:
    """A JavaScript Date string, as RunPod writes it: "Fri Jul 12 2024 10:15:00 GMT+0000 (Coordinated ...)"."""
    return time.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", time.gmtime(ts))


def pod_gql(engine: Engine, inst: Instance) -> dict:
    runtime = None
    if inst.phase == "running" and not inst.pulling:  # RUNNING with runtime null while the image pulls
        ports = []
        for p in inst.ports:
            num, _, proto = p.partition("/")
            if num == "22" and proto == "tcp":
                # the SDK does not check isIpPublic, so the mapping still leads to the node
                ports.append({"ip": inst.ip, "isIpPublic": inst.support_public_ip, "privatePort": 22,
                              "publicPort": inst.ssh_port, "type": "tcp"})
            else:
                ports.append({"ip": "100.65.0.101", "isIpPublic": False, "privatePort": int(num),
                              "publicPort": int(num), "type": proto})
        runtime = {"uptimeInSeconds": int(max(0, engine.clock.now() - (inst.started_at or engine.clock.now()))),
                   "ports": ports,
                   "gpus": [{"id": f"GPU-{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0}
                            for i in range(inst.gpu_count)],
                   "container": {"cpuPercent": 1, "memoryPercent": 3}}
    t = engine.runpod_gpu_type(inst.gpu_type)
    return {
        "id": inst.id, "name": inst.name, "desiredStatus": _gql_status(inst),
        "costPerHr": inst.price_per_hour, "adjustedCostPerHr": inst.price_per_hour,
        "podType": "INTERRUPTABLE" if inst.interruptible else "RESERVED", "gpuCount": inst.gpu_count,
        "vcpuCount": 8 * inst.gpu_count, "memoryInGb": 31 * inst.gpu_count, "containerDiskInGb": int(inst.disk_gb),
        "volumeInGb": inst.volume_gb, "volumeMountPath": inst.volume_mount_path, "imageName": inst.image,
        "dockerArgs": inst.args, "env": [f"{k}={v}" for k, v in inst.env.items()], "ports": ",".join(inst.ports),
        "lastStatusChange": f"Rented by User: {_js_date(inst.created_at)}", "machineId": inst.host_id + "mach",
        "uptimeSeconds": runtime["uptimeInSeconds"] if runtime else 0, "runtime": runtime,
        "machine": {"podHostId": f"{inst.id}-{inst.host_id}", "gpuDisplayName": t.name if t else inst.gpu_type,
                    "gpuTypeId": inst.gpu_type, "dataCenterId": inst.data_center, "secureCloud": inst.cloud == "SECURE",
                    "supportPublicIp": inst.support_public_ip, "location": inst.data_center,
                    "gpuType": {"id": inst.gpu_type, "displayName": t.name if t else inst.gpu_type,
                                "memoryInGb": t.memory_gb if t else 0}},
        "bidPerGpu": inst.bid, "interruptible": inst.interruptible,
        # the container's id on its host (docker's 12 hex digits): stable per pod, none before it is created
        "dockerId": hashlib.sha256(inst.id.encode()).hexdigest()[:12] if runtime else None,
        # the legacy single-port field; RunPod documents no value for it and the SDK only passes it through
        "port": None, "consumerUserId": "user_sim", "templateId": inst.template_id, "locked": inst.locked,
        "volumeEncrypted": False, "networkVolumeId": None, "containerRegistryAuthId": None,
    }


class Resolvers:
    """Root value for graphql-core: each root field is a method taking (info, **args)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # ------------------------------------------------------------------ queries
    def myself(self, info):
        e = self.engine
        pods = e.list("runpod")
        return {"id": "user_sim", "pubKey": "\n".join(e.runpod_account_keys), "clientBalance":
                round(e.balance_limit - e.spent(), 4),
                "pods": [pod_gql(e, i) for i in pods], "networkVolumes": [], "authId": "sim|user_sim",
                "email": "sim@gpuops.invalid", "spendLimit": 80, "hostBalance": 0.0, "signedTermsOfService": True,
                "multiFactorEnabled": False, "machineQuota": 0, "referralEarned": 0.0, "templateEarned": 0.0,
                "currentSpendPerHr": round(sum(i.price_per_hour for i in pods
                                               if i.phase in ("provisioning", "starting", "running")), 4)}

    def pod(self, info, input):
        inst = self.engine.get(input["podId"], "runpod")
        return pod_gql(self.engine, inst) if inst else None

    def gpuTypes(self, info, input=None):
        e = self.engine
        ids = None
        if input:
            ids = set(input.get("ids") or []) | ({input["id"]} if input.get("id") else set())
        out = []
        for t in e.catalog.runpod_gpu_types.values():
            if ids and t.id not in ids:
                continue
            out.append(_GpuTypeView(e, t))
        return out

    # ------------------------------------------------------------------ mutations
    def _deploy(self, input: dict, interruptible: bool) -> dict:
        e = self.engine
        gid = input.get("gpuTypeId")
        if not gid:
            raise GraphQLError("gpuTypeId is required")
        t = e.runpod_gpu_type(gid)
        if t is None:
            raise GraphQLError(f"There is no GPU type with id {gid}.")
        if not input.get("imageName") and not input.get("templateId"):
            raise GraphQLError("Either imageName or templateId is required.")
        cloud = (input.get("cloudType") or "ALL")
        clouds = ["secure", "community"] if cloud == "ALL" else [cloud.lower()]
        count = input.get("gpuCount") or 1
        bid = input.get("bidPerGpu")
        ports = [p for p in (input.get("ports") or "").split(",") if p]
        for p in ports:
            num, _, proto = p.partition("/")
            if not num.isdigit() or proto not in ("http", "tcp"):
                raise GraphQLError(f"Invalid port specification '{p}'.")
        if input.get("volumeInGb") and not input.get("volumeMountPath"):
            raise GraphQLError("Mount target must not be empty.")
        name = input.get("name") or "gpuops-pod"
        fault = e.check_create_faults("runpod", name, gid, gid)
        if fault and fault.type == "insufficient_balance" or e.spent() >= e.balance_limit:
            raise GraphQLError("Your account balance is too low to deploy this pod.")
        in_stock = [c for c in clouds
                    if e.runpod_stock.get(gid, {}).get(c, 0) >= count and t.max_count.get(c, 0) >= count]
        if fault or not in_stock:
            raise GraphQLError(NO_CAPACITY)
        chosen = in_stock[0]
        if interruptible:
            # cloudType ALL: any cloud whose minimum bid the bid meets will do
            floors = {c: t.spot_price[c] for c in in_stock if c in t.spot_price}
            if not floors:
                raise GraphQLError(NO_CAPACITY)
            ok = [c for c in in_stock if c in floors and bid >= floors[c]]
            if not ok:
                floor = min(floors.values())
                raise GraphQLError(f"Your bid price of ${bid:.3f}/hr is below the minimum bid price of "
                                   f"${floor:.3f}/hr for this GPU.")
            chosen = ok[0]
            price = round(bid * count, 4)
        else:
            price = round(t.price[chosen] * count, 4)
        env = {v["key"]: v["value"] for v in (input.get("env") or [])}
        if input.get("startSsh", True) and "PUBLIC_KEY" not in env and e.runpod_account_keys:
            env["PUBLIC_KEY"] = "\n".join(e.runpod_account_keys)
        allowed = input.get("allowedCudaVersions")
        cuda = next((v for v in sorted(t.cuda_versions, reverse=True) if not allowed or v in allowed), None)
        if cuda is None:
            raise GraphQLError("No compatible CUDA host is currently available.")
        inst = Instance(
            id=e.new_runpod_id(), provider="runpod", name=name, hardware=t.hardware, gpu_type=t.id,
            gpu_count=count, price_per_hour=price, image=input.get("imageName") or "", created_at=e.clock.now(),
            interruptible=interruptible, bid=bid, disk_gb=input.get("containerDiskInGb") or 10, ports=ports,
            env=env, cloud=chosen.upper(), data_center=input.get("dataCenterId") or t.data_centers[0],
            cuda_version=cuda, keys=[k for k in env.get("PUBLIC_KEY", "").splitlines() if k.strip()],
            args=input.get("dockerArgs") or "", volume_gb=input.get("volumeInGb") or 0,
            volume_mount_path=input.get("volumeMountPath") or "/workspace", boot_seconds=e.catalog.boot_seconds,
            support_public_ip=input.get("supportPublicIp") is not False,
        )
        try:
            e._take_runpod_stock(inst)
        except ApiError as err:
            raise GraphQLError(err.message) from None
        e.add_instance(inst, offer=gid)
        return pod_gql(e, inst)

    def podFindAndDeployOnDemand(self, info, input):
        return self._deploy(input, interruptible=False)

    def podRentInterruptable(self, info, input):
        return self._deploy(input, interruptible=True)

    def deployCpuPod(self, info, input):
        # the simulator sells GPUs only; REST v2 answers a CPU pod with the same rule violation
        raise GraphQLError("CPU pods are not available in this region")

    def _pod(self, pod_id: str) -> Instance:
        inst = self.engine.get(pod_id, "runpod")
        if inst is None:
            raise GraphQLError("Pod not found.")
        return inst

    async def podStop(self, info, input):
        inst = self._pod(input["podId"])
        await self.engine.stop(inst)
        return pod_gql(self.engine, inst)

    async def podResume(self, info, input):
        inst = self._pod(input["podId"])
        if inst.interruptible:
            raise GraphQLError("Interruptible pods must be resumed with podBidResume.")
        try:
            await self.engine.start(inst)
        except ApiError as err:
            raise GraphQLError(err.message) from None
        return pod_gql(self.engine, inst)

    async def podBidResume(self, info, input):
        inst = self._pod(input["podId"])
        t = self.engine.runpod_gpu_type(inst.gpu_type)
        floor = t.spot_price.get(inst.cloud.lower(), 0.0) if t else 0.0
        if input["bidPerGpu"] < floor:
            raise GraphQLError(f"Your bid price of ${input['bidPerGpu']:.3f}/hr is below the minimum bid price of "
                               f"${floor:.3f}/hr for this GPU.")
        inst.bid = input["bidPerGpu"]
        inst.price_per_hour = round(inst.bid * inst.gpu_count, 4)
        try:
            await self.engine.start(inst)
        except ApiError as err:
            raise GraphQLError(err.message) from None
        return pod_gql(self.engine, inst)

    async def podTerminate(self, info, input):
        inst = self._pod(input["podId"])
        try:
            await self.engine.terminate(inst)
        except ApiError as err:
            raise GraphQLError(err.message, extensions={"code": "INTERNAL_SERVER_ERROR"}) from None
        return None

    def updateUserSettings(self, info, input):
        keys = [k for k in (input.get("pubKey") or "").splitlines() if k.strip()]
        self.engine.runpod_account_keys = keys
        return {"id": "user_sim", "pubKey": "\n".join(keys)}


# the vendor's spec sheets (NVIDIA); a model the table lacks reports 0
CUDA_CORES = {"NVIDIA GeForce RTX 4090": 16384, "NVIDIA RTX A6000": 10752, "NVIDIA L40S": 18176,
              "NVIDIA A100 80GB PCIe": 6912, "NVIDIA A100-SXM4-80GB": 6912, "NVIDIA H100 80GB HBM3": 16896,
              "NVIDIA H100 PCIe": 14592, "NVIDIA GeForce RTX 3090": 10496}
# simulator choice: RunPod publishes savings-plan prices per GPU type but no rule for them
SAVINGS_PLAN_DISCOUNT = {"oneWeekPrice": 0.95, "oneMonthPrice": 0.9, "threeMonthPrice": 0.85, "sixMonthPrice": 0.8,
                         "oneYearPrice": 0.75}


class _GpuTypeView:
    """gpuTypes entries; lowestPrice takes arguments, so it is a method."""

    def __init__(self, engine: Engine, t):
        self.e = engine
        self.t = t
        self.id = t.id
        self.displayName = t.name
        self.memoryInGb = t.memory_gb
        self.manufacturer = t.manufacturer
        self.maxGpuCount = max(t.max_count.values() or [0])
        self.secureCloud = t.max_count.get("secure", 0) > 0
        self.communityCloud = t.max_count.get("community", 0) > 0
        self.securePrice = t.price.get("secure")
        self.communityPrice = t.price.get("community")
        self.secureSpotPrice = t.spot_price.get("secure")
        self.communitySpotPrice = t.spot_price.get("community")
        self.cudaCores = CUDA_CORES.get(engine.catalog.hardware[t.hardware].smi_name, 0)
        self.maxGpuCountSecureCloud = t.max_count.get("secure", 0)
        self.maxGpuCountCommunityCloud = t.max_count.get("community", 0)
        self.minPodGpuCount = 1
        # savings plans are sold on secure cloud only, at a discount that grows with the term
        secure = t.price.get("secure") if self.secureCloud else None
        for name, factor in SAVINGS_PLAN_DISCOUNT.items():
            setattr(self, name, round(secure * factor, 3) if secure else None)

    def lowestPrice(self, info, input=None):
        input = input or {}
        count = input.get("gpuCount") or 1
        sc = input.get("secureCloud")
        clouds = ["secure", "community"] if sc is None else (["secure"] if sc else ["community"])
        stock = self.e.runpod_stock.get(self.t.id, {})
        avail = [c for c in clouds if stock.get(c, 0) >= count and self.t.max_count.get(c, 0) >= count]
        free = max((stock.get(c, 0) for c in clouds), default=0)
        status = None if not avail else ("Low" if free < 2 * count else ("Medium" if free < 6 * count else "High"))
        price_c = avail or clouds
        return {
            "minimumBidPrice": min((self.t.spot_price.get(c, 0.0) for c in price_c), default=None),
            "uninterruptablePrice": min((self.t.price.get(c, 0.0) for c in price_c), default=None),
            "stockStatus": status,
            "availableGpuCounts": [n for n in (1, 2, 4, 8) if n <= free and n <= max(self.t.max_count.values())],
            "minVcpu": 8, "minMemory": 31,
            "maxUnreservedGpuCount": free,
        }


def build_router(engine: Engine, auth) -> APIRouter:
    r = APIRouter()
    root = Resolvers(engine)

    @r.post("/graphql")
    async def graphql_endpoint(request: Request):
        auth(request)
        raw = await request.body()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return JSONResponse({"errors": [{"message": "Body is not valid JSON"}]}, status_code=400)
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str) or not query.strip():
            return JSONResponse({"errors": [{"message": "Must provide query string."}]}, status_code=400)
        variables = payload.get("variables") or None
        try:
            doc = parse(query)
        except GraphQLError as err:
            return JSONResponse({"errors": [err.formatted]}, status_code=400)
        errs = validate(SCHEMA, doc)
        if errs:
            return JSONResponse({"errors": [e.formatted for e in errs]}, status_code=400)
        result = await graphql(SCHEMA, query, root_value=root, variable_values=variables,
                               operation_name=payload.get("operationName"))
        body: dict = {"data": result.data}
        if result.errors:
            errors = []
            for e in result.errors:
                f = e.formatted
                f.setdefault("extensions", {}).setdefault("code", "INTERNAL_SERVER_ERROR" if "wrong" in e.message
                                                          else "BAD_USER_INPUT")
                errors.append(f)
            body["errors"] = errors
            # variable coercion errors happen before execution: data is absent, a client error
            if result.data is None and not any(e.path for e in result.errors):
                return JSONResponse(body, status_code=400)
        return JSONResponse(body)

    return r
