import { toBinary, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { FaceService } from "../../gen/face/v1/face_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** The services this server answers, as reflection lists them. */
export const SERVED_SERVICES = [FaceService, Health, v1.ServerReflection, v1alpha.ServerReflection];

/** A reflection request as both versions shape it (they differ only in their package). */
interface ReflectionRequest {
  host: string;
  messageRequest: { case: string | undefined; value?: unknown };
}

/**
 * Every file the served services are defined in, with their dependencies, by file name and by each
 * symbol they declare (services, methods, messages, enums, nested ones, extensions).
 */
function descriptorIndex() {
  const files = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const addMessage = (file: DescFile, message: DescMessage) => {
    bySymbol.set(message.typeName, file);
    for (const nested of message.nestedMessages) addMessage(file, nested);
    for (const nested of message.nestedEnums) bySymbol.set(nested.typeName, file);
    for (const extension of message.nestedExtensions) bySymbol.set(extension.typeName, file);
  };
  const addFile = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const service of file.services) {
      bySymbol.set(service.typeName, file);
      for (const method of service.methods) bySymbol.set(`${service.typeName}.${method.name}`, file);
    }
    for (const message of file.messages) addMessage(file, message);
    for (const e of file.enums) bySymbol.set(e.typeName, file);
    for (const extension of file.extensions) bySymbol.set(extension.typeName, file);
    for (const dependency of file.dependencies) addFile(dependency);
  };
  for (const service of SERVED_SERVICES) addFile(service.file);
  return { files, bySymbol };
}

/** A file and everything it imports, each once, the file itself first, serialized. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dependency of f.dependencies) visit(dependency);
  };
  visit(file);
  return out;
}

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), so grpcurl, `buf curl`, Postman and
 * grpcui can list and call the services without the proto files. Answered from the descriptors
 * buf generated, so it is the contract the server actually serves.
 */
export function createReflectionRoutes(): (router: ConnectRouter) => void {
  const { files, bySymbol } = descriptorIndex();

  function answer(request: ReflectionRequest) {
    const { case: kind, value } = request.messageRequest;
    const notFound = (what: string) => ({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } });
    const filesOf = (file: DescFile | undefined, what: string) =>
      file === undefined ? notFound(what) : { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } };
    let messageResponse: { case: string; value: object };
    switch (kind) {
      case "listServices":
        messageResponse = { case: "listServicesResponse", value: { service: SERVED_SERVICES.map((s) => ({ name: s.typeName })) } };
        break;
      case "fileByFilename":
        messageResponse = filesOf(files.get(String(value)), `file ${String(value)}`);
        break;
      case "fileContainingSymbol":
        messageResponse = filesOf(bySymbol.get(String(value).replace(/^\./, "")), `symbol ${String(value)}`);
        break;
      case "allExtensionNumbersOfType":
        // No message here is extended by another file (descriptor options are not served types).
        messageResponse = { case: "allExtensionNumbersResponse", value: { baseTypeName: String(value), extensionNumber: [] } };
        break;
      default:
        messageResponse = { case: "errorResponse", value: { errorCode: Code.Unimplemented, errorMessage: `${kind ?? "an empty request"} is not supported` } };
    }
    return { validHost: request.host, originalRequest: request, messageResponse };
  }

  const service = {
    async *serverReflectionInfo(requests: AsyncIterable<ReflectionRequest>) {
      for await (const request of requests) yield answer(request);
    },
  };
  return (router) => {
    // The two versions have the same messages in different packages.
    router.service(v1.ServerReflection, service as never);
    router.service(v1alpha.ServerReflection, service as never);
  };
}
