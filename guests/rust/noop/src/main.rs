//! Does nothing and exits 0: the floor for measuring spawn + join.

fn main() {}
