import Foundation
import Quality

/// `corpus check --config FILE`.
enum ConfigurationTargets {
    static let checkConfig = FuzzTarget(name: "check-config", summary: "CheckConfiguration.load: sections laid over the defaults, unknown keys, validation, and the configuration hash") { bytes in
        guard let config = try? CheckConfiguration.load(data: Data(bytes), path: "checks.json") else { return }
        FuzzCheck.require((try? config.hash()) != nil, "an accepted configuration has no hash")
        // What `load` accepts, it accepts again from its own canonical form, unchanged.
        if let canonical = try? config.canonicalJSON() {
            let again = try? CheckConfiguration.load(data: Data(canonical.utf8), path: "checks.json")
            FuzzCheck.require(again == config, "the canonical JSON of an accepted configuration does not load back to it")
        }
    }
}
