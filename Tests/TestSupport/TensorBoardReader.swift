import Foundation
import Testing

/// TensorBoard's own reading code, run by the Python named in `CORPUS_TENSORBOARD_PYTHON`.
public enum TensorBoardReader {
    /// The Python to run, or nil when the variable is unset or empty.
    public static var python: String? {
        ProcessInfo.processInfo.environment["CORPUS_TENSORBOARD_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Reads a folder as TensorBoard does and prints JSON: the scalars as the classic
    /// `EventAccumulator` gives them (`Scalars(tag)`), the same data as the scalars dashboard of
    /// TensorBoard 2 reads it (`plugin_event_accumulator`, where `simple_value` becomes a scalar
    /// tensor), each value as [step, the bits of its float32], and the `file_version` of each file.
    static let script = """
        import glob, json, os, struct, sys
        import numpy
        import tensorboard
        from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator, event_file_loader
        from tensorboard.util import tensor_util

        def bits(value):
            return struct.unpack("<I", struct.pack("<f", value))[0]

        folder = sys.argv[1]
        classic = event_accumulator.EventAccumulator(folder, size_guidance={event_accumulator.SCALARS: 0})
        classic.Reload()
        scalars = {tag: [[e.step, bits(e.value)] for e in classic.Scalars(tag)] for tag in classic.Tags()["scalars"]}

        plugin = plugin_event_accumulator.EventAccumulator(folder, size_guidance={plugin_event_accumulator.TENSORS: 0})
        plugin.Reload()
        tags = plugin.PluginTagToContent("scalars").keys()
        def tensor_bits(proto):
            array = tensor_util.make_ndarray(proto)
            assert array.dtype == numpy.float32 and array.shape == (), (array.dtype, array.shape)
            return bits(float(array))

        tensors = {tag: [[e.step, tensor_bits(e.tensor_proto)] for e in plugin.Tensors(tag)] for tag in tags}

        versions = []
        for path in sorted(glob.glob(os.path.join(folder, "*tfevents*"))):
            for event in event_file_loader.EventFileLoader(path).Load():
                if event.HasField("file_version"):
                    versions.append(event.file_version)
        print(json.dumps({"version": tensorboard.__version__, "scalars": scalars, "tensors": tensors, "file_versions": versions}))
        """

    public struct Result {
        public var version: String
        public var scalars: [String: [[Int64]]]
        public var tensors: [String: [[Int64]]]
        public var fileVersions: [String]
    }

    public static func read(directory: URL, python: String) throws -> Result {
        let scriptURL = directory.deletingLastPathComponent().appendingPathComponent("read_events.py")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        let result = try TestSupport.runProcess(URL(fileURLWithPath: python), [scriptURL.path, directory.path])
        try #require(result.status == 0, "\(python) \(scriptURL.path) failed: \(result.stderr)")
        let outData = Data(result.stdout.utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: outData) as? [String: Any])
        func series(_ key: String) throws -> [String: [[Int64]]] {
            let raw = try #require(object[key] as? [String: [[NSNumber]]], "no \(key) in \(String(decoding: outData, as: UTF8.self))")
            return raw.mapValues { $0.map { $0.map(\.int64Value) } }
        }
        return Result(version: object["version"] as? String ?? "?", scalars: try series("scalars"), tensors: try series("tensors"),
                      fileVersions: object["file_versions"] as? [String] ?? [])
    }
}
