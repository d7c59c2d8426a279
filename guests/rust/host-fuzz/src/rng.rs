//! A small deterministic PRNG (xorshift64*) and the random values the
//! fuzzer draws from it: the same seed gives the same calls.

/// xorshift64* over a non-zero state; `blocking` lets waits be endless.
pub struct Rng {
    state: u64,
    blocking: bool,
}

impl Rng {
    /// A generator for `seed` (any value, 0 included). With `blocking`,
    /// [`Rng::short_timeout`] is sometimes `none`: the run may then wait
    /// until the test kills it.
    pub fn new(seed: u64, blocking: bool) -> Rng {
        Rng {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            blocking,
        }
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A size or offset from the edges: 0, small, around powers of two,
    /// near `u32::MAX`, `i64::MAX` and `u64::MAX`, or anything.
    pub fn size(&mut self) -> u64 {
        match self.below(12) {
            0 => 0,
            1 => 1,
            2 => self.below(4096),
            3 => 1 << self.below(64),
            4 => (1u64 << self.below(64)).wrapping_sub(1),
            5 => u32::MAX as u64 - self.below(2),
            6 => u32::MAX as u64 + 1,
            7 => i64::MAX as u64 - self.below(2),
            8 => i64::MAX as u64 + 1,
            9 => u64::MAX - self.below(4096),
            10 => self.below(1 << 20),
            _ => self.next(),
        }
    }

    /// A `u32` count from the edges.
    pub fn count(&mut self) -> u32 {
        match self.below(6) {
            0 => 0,
            1 => 1,
            2 => self.below(100) as u32,
            3 => u32::MAX - self.below(2) as u32,
            4 => 1 << self.below(32),
            _ => self.next() as u32,
        }
    }

    /// A buffer the guest can afford: mostly small, sometimes 1 MiB + 1.
    pub fn bytes(&mut self) -> Vec<u8> {
        let len = match self.below(8) {
            0 => 0,
            1 => (1 << 20) + 1,
            2 => self.below(64 << 10),
            _ => self.below(256),
        } as usize;
        let fill = self.next() as u8;
        vec![fill; len]
    }

    /// A timeout for a call that may wait: none of them blocks for long,
    /// unless the run is `blocking`.
    pub fn short_timeout(&mut self) -> Option<u64> {
        if self.blocking && self.one_in(8) {
            return None;
        }
        Some(match self.below(4) {
            0 => 0,
            1 => 1,
            _ => self.below(2_000_000),
        })
    }

    /// A timeout for a call that cannot wait (the object is ready): the
    /// extremes, `none` included.
    pub fn any_timeout(&mut self) -> Option<u64> {
        match self.below(6) {
            0 => None,
            1 => Some(u64::MAX),
            2 => Some(u64::MAX - 1),
            3 => Some(i64::MAX as u64 + 1),
            4 => Some(0),
            _ => Some(self.size()),
        }
    }

    /// A name: a declared one, or one from the edges (empty, long, NUL,
    /// slashes, dots, control characters, non-ASCII).
    pub fn name(&mut self, declared: &[&str]) -> String {
        if self.below(3) > 0 {
            return self.pick(declared).to_string();
        }
        match self.below(10) {
            0 => String::new(),
            1 => "x".repeat(self.below(70_000) as usize),
            2 => format!("{}\0{}", self.pick(declared), self.next()),
            3 => "../".repeat(self.below(50) as usize + 1),
            4 => format!("{}/{}", self.pick(declared), self.next()),
            5 => "\u{1b}[31mred\u{1b}[0m\n\r".to_string(),
            6 => "é€😀\u{202e}".repeat(self.below(20) as usize + 1),
            7 => format!("{} ", self.pick(declared)),
            8 => self.pick(declared).to_uppercase(),
            _ => format!("n{}", self.next()),
        }
    }

    /// A path for the filesystem: mostly a few short names, so calls meet
    /// each other's files, else one from the edges.
    pub fn path(&mut self) -> String {
        const NAMES: &[&str] = &["a", "b", "c", "d", "a/b", "a/c", "d/e/f", "b/"];
        if self.below(3) > 0 {
            return self.pick(NAMES).to_string();
        }
        match self.below(14) {
            0 => String::new(),
            1 => ".".into(),
            2 => "..".into(),
            3 => "../a".into(),
            4 => "a/../../b".into(),
            5 => "/a".into(),
            6 => "x".repeat(self.below(5000) as usize + 250),
            7 => "a\0b".into(),
            8 => "d/".repeat(self.below(300) as usize + 1),
            9 => "a//b/./c/".into(),
            10 => "a/".repeat(2100),
            11 => format!("{}/..", self.pick(NAMES)),
            12 => "l".into(),
            _ => format!("n{}", self.below(100)),
        }
    }
}
