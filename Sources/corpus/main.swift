import Ingest
print("corpus (ICU \(icuVersion))")
