fn main() -> anyhow::Result<()> {
    nobat::cli::run()
}
