import Foundation

/// Refuses to write into a folder through a symbolic link. Every file corpus writes goes to a
/// temporary name and is renamed over its target, and a rename replaces a link rather than
/// following it, so a link planted where a file goes is replaced, never written through. What is
/// left is a target folder that is itself a link (an export or adapter folder pointing elsewhere),
/// which would put data outside the place the user named: refused with the link's destination, so
/// the user can pass the real path on purpose (docs/RELIABILITY.md). Links higher up the path (a
/// home folder on another disk) are the user's own layout and are followed as usual.
public enum SymlinkGuard {
    /// - Throws: `FileWriteError` when `url`'s last component is a symbolic link.
    public static func refuseLink(at url: URL, what: String) throws {
        let path = url.standardizedFileURL.path
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return }
        let destination = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
        throw FileWriteError(path: path, message: "is a symbolic link (to \(destination)); corpus does not write a \(what) through a link, so that nothing lands outside the place you named: pass the real path (\(destination)) or remove the link")
    }
}
