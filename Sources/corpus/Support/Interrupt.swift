import Foundation

/// Ctrl-C and SIGTERM: the first one asks the running command (ingest, train, eval) to stop at the
/// next safe point (roll back a file, write a checkpoint, store nothing).
enum Interrupt {
    // Written only by the signal handler and read by polling between rows: a sig_atomic_t that a
    // signal handler may set is the one shared state POSIX allows here, hence nonisolated(unsafe).
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func install() {
        signal(SIGINT) { _ in Interrupt.flag = 1 }
        signal(SIGTERM) { _ in Interrupt.flag = 1 }
        unblock()
    }

    /// A parent may have started us with SIGINT and SIGTERM blocked (the mask is inherited, e.g.
    /// from a test runner or a service manager): unblock them so Ctrl-C and kill are heard.
    /// `corpus serve` calls this alone (its server handles the signals itself).
    static func unblock() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }
}
