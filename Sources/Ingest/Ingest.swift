import CICU

/// Version of the ICU library the ingest readers use for detection and conversion.
public var icuVersion: String { String(cString: cicu_version()) }
