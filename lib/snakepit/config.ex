defmodule Snakepit.Config do
  @moduledoc """
  Reads the default pool's options from the `:snakepit` application environment, so that an
  existing upstream Snakepit configuration keeps working:

      config :snakepit,
        pooling_enabled: true,
        pool_size: 4,
        adapter_module: Snakepit.Adapters.Python,
        pool_config: %{adapter_args: ["--adapter", "my_pkg.MyAdapter"]},
        pool_queue_timeout: 5_000,
        pool_max_queue_size: 1_000,
        pool_startup_timeout: 10_000

  `pool_config` may also hold any `Snakepit.Pool` option by its own name (e.g. `env`,
  `python_executable`, `timeout`). Values are validated by `Snakepit.Pool.Options`.
  """

  @top_level [
    pool_size: :size,
    adapter_module: :adapter_module,
    pool_queue_timeout: :queue_timeout,
    pool_max_queue_size: :max_queue_size,
    pool_startup_timeout: :startup_timeout,
    worker_timeout: :timeout,
    health_check_interval: :health_check_interval,
    worker_max_requests: :worker_max_requests,
    worker_ttl: :worker_ttl,
    max_start_failures: :max_start_failures
  ]

  @doc "Options for the default pool `Snakepit.Pool`."
  @spec pool_options() :: keyword()
  def pool_options do
    env = Application.get_all_env(:snakepit)
    pool_config = Map.new(Keyword.get(env, :pool_config, %{}))
    pool_option_names = Snakepit.Pool.Options.names()

    from_top = for {key, option} <- @top_level, Keyword.has_key?(env, key), do: {option, env[key]}

    from_pool_config =
      for {key, value} <- pool_config,
          option = if(key == :pool_size, do: :size, else: key),
          option in pool_option_names,
          do: {option, value}

    Keyword.merge([name: Snakepit.Pool], Keyword.merge(from_top, from_pool_config))
  end
end
