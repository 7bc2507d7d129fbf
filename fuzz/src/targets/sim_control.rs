//! A hostile guest's requests on the simulator's control socket: any bytes
//! as a request body. Parsing never panics, bounds every count before
//! allocating, and whatever it accepts encodes back to a request that
//! parses to the same thing.

use xenmq_runtime::sim::proto::{Request, MAX_FRAME};

/// One execution.
pub fn run(body: &[u8]) {
    if body.len() > MAX_FRAME {
        return;
    }
    if let Ok(req) = Request::parse(body) {
        let again = req.encode().0;
        assert!(again.len() <= body.len());
        assert_eq!(Request::parse(&again), Ok(req));
    }
}
