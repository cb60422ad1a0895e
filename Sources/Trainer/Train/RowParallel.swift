import ModelRuntime
import Foundation

/// Elementwise work split into contiguous row ranges on the machine's cores. It runs between
/// BLAS calls, while OpenBLAS's own threads are idle, so the cores are not oversubscribed.
/// Every row is written by exactly one part, and nothing is reduced across parts, so results
/// do not depend on the number of parts.
enum RowParallel {
    /// A closure handed to worker threads that write disjoint rows.
    private struct Body: @unchecked Sendable {
        // @unchecked: each part touches only its own rows; `forEach` waits for all parts.
        let run: (Range<Int>) -> Void
    }

    /// Calls body on ranges covering 0..<rows, concurrently when there are at least
    /// `minimumRows` rows per part.
    static func forEach(rows: Int, minimumRows: Int = 8, _ body: (Range<Int>) -> Void) {
        let parts = min(BLAS.threads, rows / max(minimumRows, 1))
        guard parts > 1 else {
            if rows > 0 { body(0..<rows) }
            return
        }
        let chunk = (rows + parts - 1) / parts
        withoutActuallyEscaping(body) { escapable in
            let box = Body(run: escapable)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let start = p * chunk, end = min(rows, start + chunk)
                if start < end { box.run(start..<end) }
            }
        }
    }
}
