/// One record of a TensorBoard event file: the `Event` message of TensorBoard's
/// `tensorboard/compat/proto/event.proto` (the same as TensorFlow's `tensorflow/core/util/event.proto`),
/// with the two kinds of content corpus writes.
///
/// ```
/// message Event {
///   double wall_time = 1;
///   int64 step = 2;
///   oneof what { string file_version = 3; ...; Summary summary = 5; ... }
/// }
/// message Summary { repeated Value value = 1; }
/// message Summary.Value { string tag = 1; oneof value { float simple_value = 2; ... } }
/// ```
///
/// Encoded as protobuf's own serializer would: `wall_time` and `step` are left out when zero (their
/// proto3 defaults), while members of a `oneof` (`file_version`, `summary`, `simple_value`) are
/// always written, zero or not, so a reader can tell which one is set.
struct TensorBoardEvent {
    /// What the event holds.
    enum Content {
        /// The first event of every file: `file_version`, "brain.Event:2" today.
        case fileVersion(String)
        /// A `Summary` of scalars, each a `Value { tag, simple_value }`.
        case scalars([(tag: String, value: Float)])
    }

    /// The version string TensorBoard expects in the first event of a file.
    static let currentFileVersion = "brain.Event:2"

    /// Seconds since 1970-01-01 UTC.
    var wallTime: Double
    var step: Int64
    var content: Content

    /// The protobuf encoding of the `Event` message.
    func encoded() -> [UInt8] {
        var event = ProtobufWriter()
        if wallTime != 0 { event.double(1, wallTime) }
        if step != 0 { event.int64(2, step) }
        switch content {
        case .fileVersion(let version):
            event.string(3, version)
        case .scalars(let values):
            var summary = ProtobufWriter()
            for (tag, value) in values {
                var entry = ProtobufWriter()
                entry.string(1, tag)
                entry.float(2, value)
                summary.message(1, entry.bytes)
            }
            event.message(5, summary.bytes)
        }
        return event.bytes
    }
}
