//! Writes the benchmark PDFs (the same bytes the criterion benches use) into a directory, so
//! tools we compare against (pyHanko) sign exactly the same documents.
//! Usage: `cargo run --release -p signet-testkit --example write_fixtures -- DIR`

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("one-page.pdf"),
        signet_testkit::pdfs::classic_pdf(1),
    )?;
    std::fs::write(
        dir.join("twenty-mb.pdf"),
        signet_testkit::pdfs::classic_pdf_with_image(3, 20 * 1024 * 1024),
    )?;
    println!("wrote one-page.pdf and twenty-mb.pdf to {}", dir.display());
    Ok(())
}
