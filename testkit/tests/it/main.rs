//! Checks of the repository itself, beside the helpers every suite shares.

mod architecture;
