//! The shape every checked view shares: a type over a buffer `T` that only its
//! `new_checked` builds, so each accessor can rely on what that constructor checked.

/// A view type over a buffer `T`, with `into_inner`. The module writes `new_checked`.
macro_rules! view {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Gives the buffer back.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

/// A [`view!`] over a fixed header of `$len` bytes: `new_checked` refuses a shorter
/// buffer ([`crate::Error::Truncated`]) and `header()` copies the header out.
macro_rules! fixed_header_view {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        view!($(#[$meta])* $name);

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` after checking it holds at least the whole fixed header.
            pub fn new_checked(buffer: T) -> $crate::Result<Self> {
                if buffer.as_ref().len() < $len {
                    return Err($crate::Error::Truncated);
                }
                Ok($name { buffer })
            }

            fn header(&self) -> [u8; $len] {
                // new_checked guarantees the length; the fallback is never taken.
                self.buffer
                    .as_ref()
                    .first_chunk()
                    .copied()
                    .unwrap_or([0; $len])
            }
        }
    };
}
