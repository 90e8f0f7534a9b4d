# Runs Snakepit.run_as_script/2 in a VM of its own, for test/snakepit/script_exit_test.exs.
#
#   elixir -pa <ebin> run_as_script.exs [--exit-mode MODE] [--stop-mode MODE] [--raise] [--pool]
#
# Prints "WORKERS <os pids>" from inside the function when it has a pool (--pool: two
# snakepit_test_worker processes), and "AFTER <result>" if run_as_script returns.
{opts, _, _} =
  OptionParser.parse(System.argv(),
    strict: [exit_mode: :string, stop_mode: :string, raise: :boolean, pool: :boolean]
  )

script_opts =
  Enum.flat_map(opts, fn
    {:exit_mode, mode} -> [exit_mode: String.to_atom(mode)]
    {:stop_mode, mode} -> [stop_mode: String.to_atom(mode)]
    {:pool, true} -> [pool_options: [size: 2, adapter_module: Snakepit.Adapters.TestWorker]]
    _ -> []
  end)

result =
  Snakepit.run_as_script(
    fn ->
      if opts[:pool], do: IO.puts("WORKERS #{Enum.join(Snakepit.Pool.os_pids(), " ")}")
      if opts[:raise], do: raise("boom")
      :done
    end,
    script_opts
  )

IO.puts("AFTER #{inspect(result)}")
