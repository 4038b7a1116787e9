//! Measures the engine on the hostile PDFs of issue 10, one process per run so its peak RSS is
//! the engine's: `bomb write DIR` writes them (see `signet_testkit::bombs`), then
//! `/usr/bin/time -v bomb check|prepare FILE` reads one and prints the outcome and the time.
//! Usage: `cargo run --release -p signet-pdf --example bomb -- write /tmp/bombs`

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::Instant;

use signet_testkit::bombs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", dir] => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            let files: [(&str, Vec<u8>); 10] = [
                ("a-wide-xref-stream.pdf", bombs::wide_xref_stream()),
                (
                    "a-narrow-xref-stream.pdf",
                    bombs::xref_stream_chain([1, 0, 0], 64 << 20, 1),
                ),
                (
                    "a-xref-prev-chain.pdf",
                    bombs::xref_stream_chain([1, 4, 0], 12_582_912, 3),
                ),
                (
                    "b-object-streams.pdf",
                    bombs::object_stream_bomb(8, 64 << 20),
                ),
                (
                    "c-unclosed-fields.pdf",
                    bombs::unclosed_fields_bomb(2000, 4 << 20),
                ),
                (
                    "c-unclosed-fields-48mb.pdf",
                    bombs::unclosed_fields_bomb(2000, 48 << 20),
                ),
                (
                    "truncated-xref-stream.pdf",
                    bombs::truncated_xref_stream(true),
                ),
                (
                    "truncated-object-stream.pdf",
                    bombs::truncated_object_stream(true),
                ),
                ("honest-one-page.pdf", signet_testkit::pdfs::classic_pdf(1)),
                (
                    "honest-twenty-mb.pdf",
                    signet_testkit::pdfs::classic_pdf_with_image(3, 20 << 20),
                ),
            ];
            for (name, bytes) in files {
                std::fs::write(dir.join(name), &bytes)?;
                println!("{name}: {} bytes", bytes.len());
            }
        }
        [mode @ ("check" | "prepare"), file] => {
            let start = Instant::now();
            let input = BufReader::new(File::open(file)?);
            let outcome = if mode == "check" {
                signet_pdf::check(input)
            } else {
                let options = signet_pdf::PrepareOptions::new(time::OffsetDateTime::UNIX_EPOCH);
                signet_pdf::prepare(input, std::io::sink(), &options).map(drop)
            };
            let elapsed = start.elapsed();
            match outcome {
                Ok(()) => println!("{mode} {file}: accepted in {elapsed:?}"),
                Err(e) => println!("{mode} {file}: refused in {elapsed:?}: {e}"),
            }
        }
        _ => {
            eprintln!("usage: bomb write DIR | bomb check FILE | bomb prepare FILE");
            std::process::exit(2);
        }
    }
    Ok(())
}
